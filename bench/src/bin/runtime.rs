//! Container lifecycle through `pkg/runtime` versus `ctr run --rm`, same
//! containerd, same image, same run.
//!
//! `cargo run --release -p outpost-bench --bin runtime -- [N]` (default 20).
//! Each sample: create (volume + snapshot + container + task) → start →
//! wait for exit → delete task, container and volume, for a busybox `true`.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_api::AppConfig;
use outpost_bench::scratch::{count_arg, Scratch};
use outpost_bench::{median, percentile, row};
use outpost_runtime::{task, Runtime, TaskIo};

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
    let t0 = Instant::now();
    let img = rt.import_layout(&images.join("sh"), "sh:latest").await?;
    let import = t0.elapsed();

    // Warm-up, so neither side pays first-use costs.
    one_outpost(&rt, &io, 0).await?;
    let mut ours = Vec::with_capacity(n);
    for i in 1..=n {
        let t = Instant::now();
        one_outpost(&rt, &io, i as u32).await?;
        ours.push(t.elapsed());
    }

    let sock = layout.user_socket();
    let ctr = |id: &str| -> Result<()> {
        let st = Command::new("ctr")
            .arg("--address")
            .arg(&sock)
            .args([
                "-n",
                "eve-user-apps",
                "run",
                "--rm",
                "--null-io",
                "--runc-binary",
                "runc",
            ])
            .arg(&img.name)
            .arg(id)
            .arg("/bin/true")
            .status()
            .context("running ctr")?;
        if !st.success() {
            bail!("ctr run {id} failed: {st}");
        }
        Ok(())
    };
    ctr("ctr-warmup")?;
    let mut base = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        ctr(&format!("ctr-bench-{i}"))?;
        base.push(t.elapsed());
    }
    instance.kill().await;

    println!(
        "container lifecycle, busybox true, N = {n} (image import: {:.1} ms)",
        import.as_secs_f64() * 1000.0
    );
    println!(
        "{:<34} {:>12} {:>12} {:>9}",
        "", "pkg/runtime", "ctr run --rm", "ratio"
    );
    row("median", median(&ours), median(&base));
    row("p90", percentile(&ours, 90.0), percentile(&base, 90.0));
    row("min", percentile(&ours, 0.0), percentile(&base, 0.0));
    Ok(())
}

async fn one_outpost(rt: &Runtime, io: &TaskIo, i: u32) -> Result<Duration> {
    let t = Instant::now();
    let app: AppConfig = serde_json::from_value(serde_json::json!({
        "uuid": uuid::Uuid::new_v4().to_string(), "version": "1", "display_name": format!("b{i}"),
        "app_num": i + 1, "image": "sh:latest", "env": { "EVE_ECO_CMD": "/bin/true" },
    }))?;
    let id = app.task_id();
    let waiter = {
        rt.create_app(&app, 1, io).await?;
        let c = rt.client().clone();
        let id = id.clone();
        tokio::spawn(async move { task::wait(&c, &id, "").await })
    };
    rt.start(&id).await?;
    let status = waiter.await??;
    if status != 0 {
        bail!("{id} exited {status}");
    }
    let obs = rt.find(&id).await?.context("container vanished")?;
    rt.remove_container(&obs).await?;
    rt.remove_volume(&obs.volume_dir).await?;
    Ok(t.elapsed())
}
