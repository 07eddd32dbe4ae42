//! Registry pull through `pkg/runtime::pull` versus `ctr images pull
//! --plain-http`, same registry, same containerd, same image, same run.
//!
//! `cargo run --release -p outpost-bench --bin bench-pull -- [MiB]`
//! (default 200): builds an image of a busybox layer plus four
//! pseudo-random (incompressible) layers totalling MiB, pushes it to a
//! `docker-registry` on loopback, then pulls it (fetch + verify + unpack)
//! with `ctr` into one namespace and with Outpost into another. Peak RSS
//! of this process is reset (`/proc/self/clear_refs` = 5) just before
//! Outpost's pull, so the number covers the pull only.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use outpost_bench::{ms, peak_rss_kib};
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::pull::{self, push, PullOptions, RegistryOptions};
use outpost_runtime::Layout;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200);
    let dir = tempfile::Builder::new()
        .prefix("outpost-bench-pull")
        .tempdir_in("/tmp")?;
    let def = outpost_ocibuild::big_image(mib, &["/bin/sh"], dir.path().join("image.yaml"))?;
    let t = Instant::now();
    let built = outpost_ocibuild::build(&def, dir.path(), &dir.path().join("out"))?;
    let bytes: u64 = built.layers.iter().map(|l| l.size).sum();
    eprintln!(
        "built {} layers, {:.1} MiB compressed, in {:?}",
        built.layers.len(),
        bytes as f64 / 1048576.0,
        t.elapsed()
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("registry").display()
    );
    std::fs::write(dir.path().join("registry.yml"), cfg)?;
    let mut registry = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(dir.path().join("registry.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting docker-registry (apt-get install docker-registry)")?;
    let result = run(dir.path(), port, &built.layout_dir, bytes).await;
    let _ = registry.kill();
    let _ = registry.wait();
    result
}

async fn run(dir: &Path, port: u16, layout_dir: &Path, bytes: u64) -> Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let reference = format!("127.0.0.1:{port}/bench/big:1");
    let reg = RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    };
    let t = Instant::now();
    push::push_layout(layout_dir, &reference, &reg).await?;
    eprintln!("pushed in {:?}", t.elapsed());

    let layout = Layout::new(dir);
    let opts = InstanceOptions::with_log_file(dir.join("containerd.log"));
    let (instance, client) = UserInstance::start(&layout, opts).await?;

    // ctr first (it also warms the registry's page cache for both).
    let t = Instant::now();
    let out = Command::new("ctr")
        .arg("--address")
        .arg(layout.user_socket())
        .args([
            "-n",
            "bench-ctr",
            "images",
            "pull",
            "--plain-http",
            &reference,
        ])
        .output()?;
    let ctr = t.elapsed();
    ensure!(
        out.status.success(),
        "ctr pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ours_client = client.with_namespace("bench-ours");
    std::fs::write("/proc/self/clear_refs", "5").context("resetting peak RSS")?;
    let rss_before = peak_rss_kib(std::process::id()).unwrap_or(0);
    let t = Instant::now();
    let rec = pull::pull(
        &ours_client,
        &reference,
        &PullOptions {
            registry: reg,
            content_root: Some(layout.user_root()),
            ..PullOptions::default()
        },
    )
    .await?;
    let ours = t.elapsed();
    let rss_peak = peak_rss_kib(std::process::id()).unwrap_or(0);
    instance.kill().await;

    let mibs = |d: Duration| bytes as f64 / 1048576.0 / d.as_secs_f64();
    println!(
        "image {} ({:.1} MiB compressed, {} layers)",
        rec.name,
        bytes as f64 / 1048576.0,
        rec.config.rootfs().diff_ids().len()
    );
    println!("{:<34} {:>12} {:>12}", "", "time", "MiB/s");
    println!(
        "{:<34} {:>12} {:>12.1}",
        "outpost pull (fetch+unpack)",
        ms(ours),
        mibs(ours)
    );
    println!(
        "{:<34} {:>12} {:>12.1}",
        "ctr images pull --plain-http",
        ms(ctr),
        mibs(ctr)
    );
    println!(
        "peak RSS of this process during the pull: {} KiB (before: {} KiB)",
        rss_peak, rss_before
    );
    Ok(())
}
