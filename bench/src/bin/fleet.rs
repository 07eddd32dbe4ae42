//! Fleet check: the reference controller with M simulated devices
//! (lightweight clients of `outpost-cloud`: real registration, real mutual
//! TLS, real signature checks) long-polling their config. One config
//! change goes to all of them; prints push latency percentiles beside the
//! same devices' `GET /ping` round trip measured in the same run, and each
//! controller process's RSS and CPU per push. Two set-ups in the same run:
//! the single embedded-redb controller, then 2 replicas on a private
//! PostgreSQL cluster with the devices spread over them (the push goes
//! through replica 0; replica 1's devices are woken by NOTIFY).
//!
//! `cargo build --release --workspace && target/release/bench-fleet [M]`
//! (default M = 500; uses `outpost-controller` from the same directory;
//! `--redb-only` skips PostgreSQL).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_api::cloud::RegisterRequest;
use outpost_bench::controller::Controller;
use outpost_bench::{ms, percentile};
use outpost_cloud::{Client, IdentityStore, Poll, Verifier};
use outpost_controller::pgtest::Cluster;
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

/// Device `i` registers with, and then polls, controller `i % ctls.len()`.
async fn register_all(ctls: &[Controller], m: usize, dir: &Path) -> Result<Vec<Sim>> {
    let b = ctls[0].bundle();
    let root = std::fs::read(b.join("root-certificate.pem"))?;
    let oc = std::fs::read(b.join("onboard.cert.pem"))?;
    let ok = std::fs::read(b.join("onboard.key.pem"))?;
    let mut sims = Vec::with_capacity(m);
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..m {
        let addr = ctls[i % ctls.len()].addr.clone();
        let onboard = Client::new(&addr, &root, Some((&oc, &ok)))?;
        let (root, dir, sem) = (root.clone(), dir.join(format!("d{i}")), sem.clone());
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

/// One push: latencies, the CLI's time, and per controller (RSS KiB
/// after, CPU seconds spent from the set-config to the last device).
struct Round {
    lat: Vec<Duration>,
    cli: Duration,
    usage: Vec<(u64, f64)>,
}

/// Every device long-polls; each reports when it holds the target generation.
fn spawn_polls(
    sims: Vec<Sim>,
    verifier: Arc<Verifier>,
    target_rx: watch::Receiver<u64>,
    got: Arc<Mutex<Vec<Instant>>>,
    finished: Arc<std::sync::atomic::AtomicBool>,
) {
    for s in sims {
        let (v, got, target_rx, finished) = (
            verifier.clone(),
            got.clone(),
            target_rx.clone(),
            finished.clone(),
        );
        tokio::spawn(async move {
            let mut etag: Option<String> = None;
            loop {
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
                                    got.lock().await.push(at);
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
}

/// M devices over `ctls`, three pushes through `ctls[0]`.
async fn run(ctls: &[Controller], m: usize, work: &Path) -> Result<(Vec<Round>, Vec<Duration>)> {
    let t0 = Instant::now();
    let sims = register_all(ctls, m, work).await?;
    println!(
        "registered {m} devices over {} controller process(es) in {:.2} s",
        ctls.len(),
        t0.elapsed().as_secs_f64()
    );
    // Baseline: each device's GET /ping round trip, same connections.
    let mut pings = Vec::new();
    for s in &sims {
        let t = Instant::now();
        s.client.ping().await?;
        pings.push(t.elapsed());
    }
    let root = std::fs::read(ctls[0].bundle().join("root-certificate.pem"))?;
    let signing = sims[0].client.signing_cert().await?;
    let mut verifier = Verifier::new(&root)?;
    verifier.set_signing_cert(signing.as_bytes())?;
    let (target_tx, target_rx) = watch::channel(0u64);
    let got = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    spawn_polls(
        sims,
        Arc::new(verifier),
        target_rx,
        got.clone(),
        finished.clone(),
    );
    let cfg = work.join("fleet.yaml");
    let mut rows = Vec::new();
    for round in 1..=3u64 {
        std::fs::write(&cfg, format!("apps: []\n# round {round}\n"))?;
        // let the polls settle (every device waiting)
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before: Vec<f64> = ctls.iter().map(|c| c.usage().1).collect();
        got.lock().await.clear();
        target_tx.send_replace(round);
        let start = Instant::now();
        ctls[0].cli(&["device", "set-config", "--all", cfg.to_str().unwrap()])?;
        let cli = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.lock().await.len() < m && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let lat = got
            .lock()
            .await
            .iter()
            .map(|at| at.duration_since(start))
            .collect();
        let usage = ctls
            .iter()
            .zip(&before)
            .map(|(c, b)| {
                let (rss, cpu) = c.usage();
                (rss, cpu - b)
            })
            .collect();
        rows.push(Round { lat, cli, usage });
    }
    finished.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok((rows, pings))
}

fn print(label: &str, m: usize, rows: &[Round], pings: &[Duration]) {
    for (i, r) in rows.iter().enumerate() {
        let per: Vec<String> = r
            .usage
            .iter()
            .map(|(rss, cpu)| format!("{:.2} s/{} MiB", cpu, rss / 1024))
            .collect();
        println!(
            "{label:<14} {:<5} {:>5}/{m:<5} {:>10} {:>10} {:>10} {:>10}   {}",
            i + 1,
            r.lat.len(),
            ms(percentile(&r.lat, 50.0)),
            ms(percentile(&r.lat, 99.0)),
            ms(percentile(&r.lat, 100.0)),
            ms(r.cli),
            per.join("  ")
        );
    }
    println!(
        "{label:<14} {:<5} {:>11} {:>10} {:>10} {:>10}   (GET /ping round trip per device)",
        "ping",
        m,
        ms(percentile(pings, 50.0)),
        ms(percentile(pings, 99.0)),
        ms(percentile(pings, 100.0)),
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let redb_only = args.iter().any(|a| a == "--redb-only");
    let m: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|s| s.parse())
        .transpose()
        .context("M must be a number")?
        .unwrap_or(500);
    raise_nofile();
    let bin = std::env::current_exe()?
        .parent()
        .unwrap()
        .join("outpost-controller");
    let mut results = Vec::new();
    {
        let ctl = Controller::start(&bin)?;
        let work = tempfile::Builder::new()
            .prefix("outpost-bench-fleet")
            .tempdir_in("/tmp")?;
        results.push((
            "redb x1",
            run(std::slice::from_ref(&ctl), m, work.path()).await?,
        ));
    }
    if !redb_only {
        let pg = tokio::task::spawn_blocking(Cluster::start)
            .await?
            .map_err(anyhow::Error::msg)?;
        let url = pg.create_db("outpost").map_err(anyhow::Error::msg)?;
        let first = Controller::start_on(&bin, Some(&url), None)?;
        let second = Controller::start_on(&bin, Some(&url), Some(&first))?;
        let work = tempfile::Builder::new()
            .prefix("outpost-bench-fleet")
            .tempdir_in("/tmp")?;
        results.push(("postgres x2", run(&[first, second], m, work.path()).await?));
    }
    println!();
    println!("fleet of {m} devices long-polling (wait 120 s); each push goes through controller 0");
    println!(
        "{:<14} {:<5} {:>11} {:>10} {:>10} {:>10} {:>10}   CPU per push / RSS, per controller process",
        "set-up", "round", "received", "p50", "p99", "max", "set-config"
    );
    for (label, (rows, pings)) in &results {
        print(label, m, rows, pings);
    }
    if results
        .iter()
        .any(|(_, (rows, _))| rows.iter().any(|r| r.lat.len() < m))
    {
        bail!("not every device received every config");
    }
    Ok(())
}
