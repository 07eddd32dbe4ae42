//! Fleet check: the reference controller with M simulated devices
//! (lightweight clients of `outpost-cloud`: real registration, real mutual
//! TLS, real signature checks) long-polling their config. One config
//! change goes to all of them; prints push latency percentiles beside the
//! same devices' `GET /ping` round trip measured in the same run, and each
//! controller process's RSS and CPU per push. Two set-ups in the same run:
//! the single embedded-redb controller, then 2 replicas on a private
//! PostgreSQL cluster with the devices spread over them (the push goes
//! through replica 0; replica 1's devices are woken by NOTIFY). On
//! PostgreSQL two more pushes follow: one right after a PostgreSQL restart
//! (fast shutdown: every replica loses its connections, replica 1's LISTEN
//! included, so its devices are reached by NOTIFY after the reconnect or by
//! the catch-up), and one during which replica 1 is killed with SIGKILL
//! (its devices reconnect to replica 0, as through a load balancer). Every
//! device must get every config.
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
    /// One client per controller process, all with the device's identity;
    /// `home` is the one it registered with and polls first.
    clients: Vec<Client>,
    home: usize,
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
    let addrs: Vec<String> = ctls.iter().map(|c| c.addr.clone()).collect();
    for i in 0..m {
        let home = i % ctls.len();
        let addr = addrs[home].clone();
        let addrs = addrs.clone();
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
            let clients = addrs
                .iter()
                .map(|a| Client::new(a, &root, Some((&id.cert_pem, &id.key_pem))))
                .collect::<Result<Vec<_>, _>>()?;
            anyhow::Ok(Sim {
                uuid: id.uuid,
                clients,
                home,
            })
        }));
    }
    for t in tasks {
        sims.push(t.await??);
    }
    Ok(sims)
}

/// What happens around a push.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Push {
    /// Nothing else.
    Plain,
    /// PostgreSQL restarts (fast shutdown) right before the set-config.
    AfterPgRestart,
    /// Controller 1 is killed (SIGKILL) as soon as the set-config returns.
    KillingController1,
}

/// One push: latencies, the CLI's time, per controller (RSS KiB after, CPU
/// seconds spent from the set-config to the last device; `None`: killed),
/// and how many devices got it from another controller than their own.
struct Round {
    kind: Push,
    lat: Vec<Duration>,
    cli: Duration,
    usage: Vec<Option<(u64, f64)>>,
    moved: usize,
}

/// A device holding the target generation: when, and whether through
/// another controller than the one it registered with.
type Got = Arc<Mutex<Vec<(Instant, bool)>>>;

/// Every device long-polls; each reports when it holds the target
/// generation. A device whose controller fails goes on with the next one
/// (as through a load balancer) 100 ms later.
fn spawn_polls(
    sims: Vec<Sim>,
    verifier: Arc<Verifier>,
    target_rx: watch::Receiver<u64>,
    got: Got,
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
            let mut cur = s.home;
            loop {
                match s.clients[cur]
                    .poll_config(&s.uuid, etag.as_deref(), Duration::from_secs(120))
                    .await
                {
                    Ok(Poll::Changed { envelope, .. }) => {
                        let at = Instant::now();
                        match v.open(&envelope) {
                            Ok(o) => {
                                etag = Some(o.etag);
                                if o.payload.generation == *target_rx.borrow() {
                                    got.lock().await.push((at, cur != s.home));
                                }
                            }
                            Err(e) => eprintln!("device {}: {e}", s.uuid),
                        }
                    }
                    Ok(_) => {}
                    Err(_) if finished.load(std::sync::atomic::Ordering::Relaxed) => return,
                    Err(_) if s.clients.len() > 1 => {
                        cur = (cur + 1) % s.clients.len();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        eprintln!("device {}: {e}", s.uuid);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// `device set-config --all` through `ctl`, retried for up to 30 s (right
/// after a PostgreSQL restart the first attempts may meet a dropped
/// connection): the time it took and the attempts.
async fn set_config_all(ctl: &Controller, cfg: &Path) -> Result<(Duration, u32)> {
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match ctl.cli(&["device", "set-config", "--all", cfg.to_str().unwrap()]) {
            Ok(_) => return Ok((start.elapsed(), attempts)),
            Err(e) if start.elapsed() > Duration::from_secs(30) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// M devices over `ctls`, one push per `pushes` entry through `ctls[0]`.
async fn run(
    ctls: &mut [Controller],
    mut pg: Option<&mut Cluster>,
    pushes: &[Push],
    m: usize,
    work: &Path,
) -> Result<(Vec<Round>, Vec<Duration>)> {
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
        s.clients[s.home].ping().await?;
        pings.push(t.elapsed());
    }
    let root = std::fs::read(ctls[0].bundle().join("root-certificate.pem"))?;
    let signing = sims[0].clients[0].signing_cert().await?;
    let mut verifier = Verifier::new(&root)?;
    verifier.set_signing_cert(signing.as_bytes())?;
    let (target_tx, target_rx) = watch::channel(0u64);
    let got: Got = Arc::new(Mutex::new(Vec::new()));
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
    let mut killed = vec![false; ctls.len()];
    for (round, kind) in (1..).zip(pushes.iter().copied()) {
        std::fs::write(&cfg, format!("apps: []\n# round {round}\n"))?;
        // let the polls settle (every device waiting)
        tokio::time::sleep(Duration::from_secs(3)).await;
        if kind == Push::AfterPgRestart {
            let pg = pg
                .as_deref_mut()
                .context("a PostgreSQL restart needs PostgreSQL")?;
            let t = Instant::now();
            tokio::task::block_in_place(|| {
                pg.stop_fast();
                pg.resume()
            })
            .map_err(anyhow::Error::msg)?;
            println!(
                "PostgreSQL restarted (fast shutdown) in {:.2} s",
                t.elapsed().as_secs_f64()
            );
        }
        let before: Vec<f64> = ctls.iter().map(|c| c.usage().1).collect();
        got.lock().await.clear();
        target_tx.send_replace(round);
        let start = Instant::now();
        let (cli, attempts) = set_config_all(&ctls[0], &cfg).await?;
        if attempts > 1 {
            println!("set-config took {attempts} attempts after the restart");
        }
        if kind == Push::KillingController1 {
            ctls[1].child.kill()?;
            ctls[1].child.wait()?;
            killed[1] = true;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.lock().await.len() < m && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let got = got.lock().await;
        let lat = got.iter().map(|(at, _)| at.duration_since(start)).collect();
        let moved = got.iter().filter(|(_, moved)| *moved).count();
        let usage = ctls
            .iter()
            .zip(&before)
            .zip(&killed)
            .map(|((c, b), killed)| {
                (!killed).then(|| {
                    let (rss, cpu) = c.usage();
                    (rss, cpu - b)
                })
            })
            .collect();
        rows.push(Round {
            kind,
            lat,
            cli,
            usage,
            moved,
        });
    }
    finished.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok((rows, pings))
}

fn print(label: &str, m: usize, rows: &[Round], pings: &[Duration]) {
    for (i, r) in rows.iter().enumerate() {
        let per: Vec<String> = r
            .usage
            .iter()
            .enumerate()
            .map(|(c, u)| match u {
                Some((rss, cpu)) => format!("{cpu:.2} s/{} MiB", rss / 1024),
                None => format!("(controller {c} killed)"),
            })
            .collect();
        let round = match r.kind {
            Push::Plain => (i + 1).to_string(),
            Push::AfterPgRestart => format!("{} pg-restart", i + 1),
            Push::KillingController1 => format!("{} kill-9 #1", i + 1),
        };
        let moved = match r.moved {
            0 => String::new(),
            n => format!("  ({n} through another controller)"),
        };
        println!(
            "{label:<12} {round:<14} {:>5}/{m:<5} {:>9} {:>9} {:>9} {:>10}   {}{moved}",
            r.lat.len(),
            ms(percentile(&r.lat, 50.0)),
            ms(percentile(&r.lat, 99.0)),
            ms(percentile(&r.lat, 100.0)),
            ms(r.cli),
            per.join("  ")
        );
    }
    println!(
        "{label:<12} {:<14} {:>11} {:>9} {:>9} {:>9}   (GET /ping round trip per device)",
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
        let mut ctl = Controller::start(&bin)?;
        let work = tempfile::Builder::new()
            .prefix("outpost-bench-fleet")
            .tempdir_in("/tmp")?;
        let plain = [Push::Plain; 3];
        results.push((
            "redb x1",
            run(std::slice::from_mut(&mut ctl), None, &plain, m, work.path()).await?,
        ));
    }
    if !redb_only {
        let mut pg = tokio::task::spawn_blocking(Cluster::start)
            .await?
            .map_err(anyhow::Error::msg)?;
        let url = pg.create_db("outpost").map_err(anyhow::Error::msg)?;
        let first = Controller::start_on(&bin, Some(&url), None)?;
        let second = Controller::start_on(&bin, Some(&url), Some(&first))?;
        let work = tempfile::Builder::new()
            .prefix("outpost-bench-fleet")
            .tempdir_in("/tmp")?;
        let pushes = [
            Push::Plain,
            Push::Plain,
            Push::Plain,
            Push::AfterPgRestart,
            Push::KillingController1,
        ];
        let mut ctls = [first, second];
        let out = run(&mut ctls, Some(&mut pg), &pushes, m, work.path()).await?;
        results.push(("postgres x2", out));
    }
    println!();
    println!("fleet of {m} devices long-polling (wait 120 s); each push goes through controller 0");
    println!(
        "{:<12} {:<14} {:>11} {:>9} {:>9} {:>9} {:>10}   CPU per push / RSS, per controller process",
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
