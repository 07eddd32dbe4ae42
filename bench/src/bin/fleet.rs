//! Fleet check: the reference controller with M simulated devices
//! (lightweight clients of `outpost-cloud`: real registration, real mutual
//! TLS, real signature checks) long-polling their config. One config
//! change goes to all of them; prints push latency percentiles beside the
//! same devices' `GET /ping` round trip measured in the same run, and the
//! controller's RSS and CPU while idle and during the push.
//!
//! `cargo build --release --workspace && target/release/bench-fleet [M]`
//! (default M = 500; uses `outpost-controller` from the same directory).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_api::cloud::RegisterRequest;
use outpost_bench::controller::Controller;
use outpost_bench::{ms, percentile};
use outpost_cloud::{Client, IdentityStore, Poll, Verifier};
use tokio::sync::{watch, Mutex};

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65536), hard);
    }
}

struct Sim {
    uuid: String,
    client: Client,
}

async fn register_all(ctl: &Controller, m: usize, dir: &Path) -> Result<Vec<Sim>> {
    let b = ctl.bundle();
    let root = std::fs::read(b.join("root-certificate.pem"))?;
    let oc = std::fs::read(b.join("onboard.cert.pem"))?;
    let ok = std::fs::read(b.join("onboard.key.pem"))?;
    let onboard = Client::new(&ctl.addr, &root, Some((&oc, &ok)))?;
    let mut sims = Vec::with_capacity(m);
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..m {
        let (onboard, root, dir, addr, sem) = (
            onboard.clone(),
            root.clone(),
            dir.join(format!("d{i}")),
            ctl.addr.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let ids = IdentityStore::new(&dir);
            let serial = format!("bench-{i:05}");
            let resp = onboard
                .register(&RegisterRequest {
                    csr_pem: ids.csr_pem(&serial)?,
                    serial,
                })
                .await?;
            let id = ids.save(&addr, &resp)?;
            let client = Client::new(&addr, &root, Some((&id.cert_pem, &id.key_pem)))?;
            anyhow::Ok(Sim {
                uuid: id.uuid,
                client,
            })
        }));
    }
    for t in tasks {
        sims.push(t.await??);
    }
    Ok(sims)
}

#[tokio::main]
async fn main() -> Result<()> {
    let m: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("M must be a number")?
        .unwrap_or(500);
    raise_nofile();
    let bin = std::env::current_exe()?
        .parent()
        .unwrap()
        .join("outpost-controller");
    let ctl = Controller::start(&bin)?;
    let work = tempfile::Builder::new()
        .prefix("outpost-bench-fleet")
        .tempdir_in("/tmp")?;
    let t0 = Instant::now();
    let sims = register_all(&ctl, m, work.path()).await?;
    let reg = t0.elapsed();
    println!(
        "registered {m} devices in {:.2} s (CSR, mTLS, certificate issued)",
        reg.as_secs_f64()
    );

    // Baseline: each device's GET /ping round trip, same connections.
    let mut pings = Vec::new();
    for s in &sims {
        let t = Instant::now();
        s.client.ping().await?;
        pings.push(t.elapsed());
    }

    let root = std::fs::read(ctl.bundle().join("root-certificate.pem"))?;
    let signing = sims[0].client.signing_cert().await?;
    let mut verifier = Verifier::new(&root)?;
    verifier.set_signing_cert(signing.as_bytes())?;
    let verifier = Arc::new(verifier);

    // Every device long-polls; each reports when it holds `target`.
    let (target_tx, target_rx) = watch::channel(0u64);
    let got: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let polling = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Set before the controller goes away at the end: errors are expected then.
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for s in sims {
        let (v, got, target_rx, polling, finished) = (
            verifier.clone(),
            got.clone(),
            target_rx.clone(),
            polling.clone(),
            finished.clone(),
        );
        tokio::spawn(async move {
            let mut etag: Option<String> = None;
            let mut counted = false;
            loop {
                if !counted {
                    polling.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    counted = true;
                }
                match s
                    .client
                    .poll_config(&s.uuid, etag.as_deref(), Duration::from_secs(120))
                    .await
                {
                    Ok(Poll::Changed { envelope, .. }) => {
                        let at = Instant::now();
                        match v.open(&envelope) {
                            Ok(o) => {
                                etag = Some(o.etag);
                                if o.payload.generation == *target_rx.borrow() {
                                    got.lock().await.push((o.payload.generation, at));
                                }
                            }
                            Err(e) => eprintln!("device {}: {e}", s.uuid),
                        }
                    }
                    Ok(_) => {}
                    Err(_) if finished.load(std::sync::atomic::Ordering::Relaxed) => return,
                    Err(e) => {
                        eprintln!("device {}: {e}", s.uuid);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    let cfg = work.path().join("fleet.yaml");
    let mut rows = Vec::new();
    for round in 1..=3u64 {
        std::fs::write(
            &cfg,
            format!("generation: {round}\napps: []\n# round {round}\n"),
        )?;
        // Let the polls settle (every device waiting), then measure idle use.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (_, cpu0) = ctl.usage();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss_idle, cpu1) = ctl.usage();
        got.lock().await.clear();
        target_tx.send_replace(round);
        let start = Instant::now();
        ctl.cli(&["device", "set-config", "--all", cfg.to_str().unwrap()])?;
        let cli_done = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.lock().await.len() < m && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let lat: Vec<Duration> = got
            .lock()
            .await
            .iter()
            .map(|(_, at)| at.duration_since(start))
            .collect();
        let (rss, cpu2) = ctl.usage();
        rows.push((
            round,
            lat,
            cli_done,
            rss_idle,
            rss,
            (cpu1 - cpu0) / 5.0,
            cpu2 - cpu1,
        ));
    }
    finished.store(true, std::sync::atomic::Ordering::Relaxed);
    println!();
    println!(
        "fleet of {m} devices long-polling (wait 120 s) one reference controller, 2-core machine"
    );
    println!(
        "{:<8} {:>9} {:>11} {:>11} {:>11} {:>11} {:>10} {:>12} {:>12}",
        "round", "received", "p50", "p90", "p99", "max", "set-config", "idle CPU", "push CPU"
    );
    for (round, lat, cli, _, _, idle_cpu, push_cpu) in &rows {
        println!(
            "{round:<8} {:>5}/{m:<3} {:>11} {:>11} {:>11} {:>11} {:>10} {:>11.1}% {:>10.2} s",
            lat.len(),
            ms(percentile(lat, 50.0)),
            ms(percentile(lat, 90.0)),
            ms(percentile(lat, 99.0)),
            ms(percentile(lat, 100.0)),
            ms(*cli),
            idle_cpu * 100.0,
            push_cpu,
        );
    }
    println!(
        "{:<8} {:>9} {:>11} {:>11} {:>11} {:>11}   (baseline: GET /ping round trip per device, same run)",
        "ping",
        m,
        ms(percentile(&pings, 50.0)),
        ms(percentile(&pings, 90.0)),
        ms(percentile(&pings, 99.0)),
        ms(percentile(&pings, 100.0)),
    );
    let last = rows.last().unwrap();
    println!(
        "controller RSS: {} MiB idle with {m} long-polls, {} MiB after the push",
        last.3 / 1024,
        last.4 / 1024
    );
    if rows.iter().any(|r| r.1.len() < m) {
        bail!("not every device received every config");
    }
    Ok(())
}
