//! Start latency of an app with one network interface and one port map
//! versus the same app without interfaces, same containerd, same image,
//! same run (samples alternate, so drift hits both sides alike).
//!
//! `cargo run --release -p outpost-bench --bin bench-net -- [N]` (default 20).
//! Each sample: create (volume + snapshot + namespace + CNI ADD of bridge,
//! host-local, portmap, firewall + container + task) → start returned. The
//! teardown (stop, delete, CNI DEL) is measured separately and not counted.
//! The network is a local instance on 10.213.99.0/24 (no NAT), set up once.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use outpost_api::{AppConfig, NetworkConfig};
use outpost_bench::scratch::{count_arg, Scratch};
use outpost_bench::{median, percentile, row};
use outpost_runtime::{net, Runtime, TaskIo};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n = count_arg(20)?;
    let Scratch {
        dir: _dir,
        images,
        layout,
        instance,
        rt,
        io,
    } = Scratch::start().await?;
    rt.import_layout(&images.join("sh"), "sh:latest").await?;

    let network: NetworkConfig = serde_json::from_value(serde_json::json!({
        "uuid": uuid::Uuid::new_v4().to_string(), "name": "bench",
        "subnet": "10.213.99.0/24", "nat": false,
    }))?;
    let t = Instant::now();
    net::ensure_network(&layout, &network).await?;
    let setup = t.elapsed();
    let nets = std::slice::from_ref(&network);

    let result = async {
        // Warm-up, so neither side pays first-use costs.
        sample(&rt, &io, nets, 0, true).await?;
        sample(&rt, &io, nets, 1, false).await?;
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let (mut with_down, mut without_down) = (Vec::new(), Vec::new());
        for i in 0..n as u32 {
            let (up, down) = sample(&rt, &io, nets, 2 + 2 * i, true).await?;
            with.push(up);
            with_down.push(down);
            let (up, down) = sample(&rt, &io, nets, 3 + 2 * i, false).await?;
            without.push(up);
            without_down.push(down);
        }
        anyhow::Ok((with, without, with_down, without_down))
    }
    .await;
    net::remove_network(&layout, &network.uuid).await?;
    instance.kill().await;
    let (with, without, with_down, without_down) = result?;

    println!(
        "app start (create → start returned), busybox sh, N = {n} each, alternating \
         (network instance set up once: {:.1} ms)",
        setup.as_secs_f64() * 1000.0
    );
    println!(
        "{:<34} {:>12} {:>12} {:>9}",
        "", "1 itf + port", "no itf", "ratio"
    );
    row("start median", median(&with), median(&without));
    row(
        "start p90",
        percentile(&with, 90.0),
        percentile(&without, 90.0),
    );
    row(
        "start min",
        percentile(&with, 0.0),
        percentile(&without, 0.0),
    );
    row("teardown median", median(&with_down), median(&without_down));
    Ok(())
}

/// One app start, with or without an interface; returns (start, teardown).
async fn sample(
    rt: &Runtime,
    io: &TaskIo,
    nets: &[NetworkConfig],
    i: u32,
    networked: bool,
) -> Result<(Duration, Duration)> {
    let mut app = serde_json::json!({
        "uuid": uuid::Uuid::new_v4().to_string(), "version": "1", "display_name": format!("b{i}"),
        "app_num": i + 1, "image": "sh:latest", "stop_timeout": "2s",
    });
    if networked {
        app["interfaces"] = serde_json::json!([{
            "network": nets[0].uuid,
            "port_maps": [{ "host_port": 39080, "app_port": 80 }],
        }]);
    }
    let app: AppConfig = serde_json::from_value(app)?;
    let id = app.task_id();
    let t = Instant::now();
    rt.create_app_with_networks(&app, nets, 1, io).await?;
    rt.start(&id).await?;
    let up = t.elapsed();
    let t = Instant::now();
    let obs = rt.find(&id).await?.context("container vanished")?;
    rt.remove_container(&obs).await?;
    let down = t.elapsed();
    rt.remove_volume(&obs.volume_dir).await?;
    Ok((up, down))
}
