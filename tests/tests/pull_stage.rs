//! Issue 14's acceptance: an image pull never blocks the reconcile loop.
//!
//! A real `outpostd` (own user containerd, memlogd) pulls a ~200 MiB image
//! from a real `docker-registry` on loopback through a TCP proxy throttled
//! to ~1 MiB/s. While that pull runs: (a) a config change that adds an app
//! is applied (RUNNING) within 1 s, (b) `outpost restart` of another app
//! answers and its PID changes within 1 s, (c) a killed task is restarted
//! within 1 s, and the pulling app shows DOWNLOADING with growing bytes.
//! Then the throttle is lifted and the big app reaches RUNNING.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_api::{AppStatus, SwState};
use outpost_runtime::pull::{push, RegistryOptions};
use outpost_tests::agent::{app_yaml, AgentEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(40);
/// The bound for (a), (b) and (c).
const BOUND: Duration = Duration::from_secs(1);
const BIG_MIB: u64 = 200;
const THROTTLE: u64 = 1024 * 1024;

/// A `docker-registry` on a random loopback port.
struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    fn start(rt: &tokio::runtime::Runtime) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("outpost-reg")
            .tempdir_in("/tmp")
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let deadline = Instant::now() + T;
        while rt
            .block_on(TcpStream::connect(("127.0.0.1", port)))
            .is_err()
        {
            assert!(Instant::now() < deadline, "registry not listening");
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            _dir: dir,
            port,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Paces the bytes a proxy sends to its clients (all connections share
/// the budget); a rate of 0 means full speed.
struct Throttle {
    rate: AtomicU64,
    next: Mutex<Instant>,
}

impl Throttle {
    async fn pace(&self, n: usize) {
        let rate = self.rate.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let until = {
            let mut next = self.next.lock().unwrap();
            let start = (*next).max(Instant::now());
            *next = start + Duration::from_secs_f64(n as f64 / rate as f64);
            *next
        };
        tokio::time::sleep_until(until.into()).await;
    }
}

/// A TCP relay to `upstream` whose downstream direction is throttled.
async fn proxy(upstream: u16, throttle: Arc<Throttle>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let throttle = throttle.clone();
            tokio::spawn(async move {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = up.into_split();
                let upward = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut uw).await;
                    let _ = uw.shutdown().await;
                });
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match ur.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    throttle.pace(n).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = cw.shutdown().await;
                upward.abort();
            });
        }
    });
    port
}

/// The big image's OCI layout: a busybox layer plus four incompressible
/// layers of `BIG_MIB / 4` MiB. Built once and kept under /tmp (building
/// takes a while; the content is deterministic).
fn big_layout() -> PathBuf {
    let dir = PathBuf::from(format!("/tmp/outpost-test-cache/pull-stage-big-{BIG_MIB}"));
    let layout = dir.join("out");
    if let Some(found) = find_layout(&layout) {
        return found;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let def =
        outpost_ocibuild::big_image(BIG_MIB, &["/bin/sleep", "1000000"], dir.join("image.yaml"))
            .unwrap();
    let t = Instant::now();
    let built = outpost_ocibuild::build(&def, &dir, &layout).unwrap();
    eprintln!("built the {BIG_MIB} MiB image in {:?}", t.elapsed());
    built.layout_dir
}

fn find_layout(out: &Path) -> Option<PathBuf> {
    if out.join("index.json").exists() {
        return Some(out.to_path_buf());
    }
    std::fs::read_dir(out)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("index.json").exists())
}

fn config(env: &AgentEnv, generation: u64, apps: &[String]) {
    env.write_config(&format!(
        "generation: {generation}\napps:\n{}",
        apps.concat()
    ));
}

/// Polls the app list every 20 ms until `f` holds; returns the time it took.
fn measure(env: &AgentEnv, what: &str, f: impl Fn(&[AppStatus]) -> bool) -> Duration {
    let t = Instant::now();
    env.wait_for_every(what, T, Duration::from_millis(20), f);
    t.elapsed()
}

fn pid_of(l: &[AppStatus], name: &str) -> Option<u32> {
    l.iter()
        .find(|a| a.display_name == name && a.state == SwState::Running)
        .and_then(|a| a.domain.as_ref())
        .and_then(|d| d.pid)
}

fn download_of(env: &AgentEnv, name: &str) -> Option<(SwState, u64, u64)> {
    let a = env.app(name)?;
    let d = a.download?;
    Some((a.state, d.done, d.total))
}

#[test]
fn a_slow_pull_blocks_neither_configs_nor_commands_nor_task_exits() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let layout = big_layout();
    let registry = Registry::start(&rt);
    let pushed = format!("127.0.0.1:{}/outpost/big:1", registry.port);
    let opts = RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    };
    rt.block_on(push::push_layout(&layout, &pushed, &opts))
        .unwrap_or_else(|e| panic!("pushing {pushed}: {e}"));
    let throttle = Arc::new(Throttle {
        rate: AtomicU64::new(THROTTLE),
        next: Mutex::new(Instant::now()),
    });
    let proxy_port = rt.block_on(proxy(registry.port, throttle.clone()));
    let big_image = format!("127.0.0.1:{proxy_port}/outpost/big:1");

    let mut env = AgentEnv::new();
    let third = app_yaml(&env.uuid(3), "third", 3, "hello", "");
    let big = app_yaml(&env.uuid(1), "big", 1, "hello", "").replace("hello:latest", &big_image);
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    config(&env, 1, std::slice::from_ref(&third));
    env.start_agent();
    env.wait_running(&["third"], T);

    // The big pull starts and stays slow.
    config(&env, 2, &[third.clone(), big.clone()]);
    env.wait_for_every("big DOWNLOADING", T, Duration::from_millis(50), |l| {
        l.iter().any(|a| {
            a.display_name == "big"
                && a.state == SwState::Downloading
                && a.download.as_ref().is_some_and(|d| d.done > 0)
        })
    });
    let (_, done_before, total) = download_of(&env, "big").unwrap();

    // (a) A config change to another app is applied.
    config(&env, 3, &[third.clone(), big.clone(), other.clone()]);
    let a = measure(&env, "other RUNNING", |l| {
        l.iter()
            .any(|a| a.display_name == "other" && a.state == SwState::Running)
    });

    // (b) An operator restart answers and the PID changes.
    let old = pid_of(&env.list(), "third").expect("third has a PID");
    let t = Instant::now();
    let (code, _, err) = env.outpost(&["restart", "third"]);
    let answered = t.elapsed();
    assert_eq!(code, 0, "outpost restart third: {err}");
    env.wait_for_every("third restarted", T, Duration::from_millis(20), |l| {
        pid_of(l, "third").is_some_and(|p| p != old)
    });
    let b = t.elapsed();

    // (c) A task exit is handled (always-restart, 400 ms initial backoff).
    let old = pid_of(&env.list(), "third").expect("third has a PID");
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    env.wait_for_every(
        "third restarted after its exit",
        T,
        Duration::from_millis(20),
        |l| pid_of(l, "third").is_some_and(|p| p != old),
    );
    let c = t.elapsed();

    // Still pulling, and getting on with it.
    let (state, done_after, _) =
        download_of(&env, "big").expect("big still downloading after (a)-(c)");
    eprintln!(
        "while pulling ({done_before} → {done_after} of {total} bytes at ~{} KiB/s): \
         (a) config applied in {a:?}, (b) restart answered in {answered:?}, PID changed in {b:?}, \
         (c) task exit restarted in {c:?}",
        THROTTLE / 1024
    );
    assert_eq!(state, SwState::Downloading);
    assert!(
        done_after > done_before,
        "bytes did not grow: {done_before} → {done_after}"
    );
    assert!(total >= BIG_MIB * 1024 * 1024, "total {total}");
    assert!(a <= BOUND, "(a) config applied after {a:?}");
    assert!(b <= BOUND, "(b) restart took {b:?}");
    assert!(c <= BOUND, "(c) task exit handled after {c:?}");

    // The app leaves the config while its pull runs: it goes at once (the
    // pull may go on, it is only content). Back in the config, it joins
    // the running download instead of starting another.
    config(&env, 4, &[third.clone(), other.clone()]);
    let gone = measure(&env, "big removed", |l| {
        !l.iter().any(|a| a.display_name == "big")
    });
    config(&env, 5, &[third.clone(), big.clone(), other.clone()]);
    let (_, done_back, _) = {
        env.wait_for_every("big DOWNLOADING again", T, Duration::from_millis(20), |l| {
            l.iter()
                .any(|a| a.display_name == "big" && a.state == SwState::Downloading)
        });
        download_of(&env, "big").expect("big downloading again")
    };
    eprintln!("big removed in {gone:?} while pulling; back, it shows {done_back} bytes done");
    assert!(gone <= BOUND, "removing the pulling app took {gone:?}");
    assert!(
        done_back >= done_after,
        "the download started over ({done_back} < {done_after} bytes)"
    );

    // Full speed: the big app comes up.
    throttle.rate.store(0, Ordering::Relaxed);
    let t = Instant::now();
    env.wait_running(&["big"], Duration::from_secs(300));
    eprintln!(
        "big RUNNING {:?} after the throttle was lifted",
        t.elapsed()
    );
    rt.block_on(env.teardown());
    drop(registry);
}

/// A failed download becomes the app's error through the planner's
/// outcome path: a missing image (HTTP 404) is permanent, severity error at
/// once; an unreachable registry is transient, a notice that is retried.
#[test]
fn failed_downloads_are_app_errors_classified_and_retried() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::start(&rt);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = AgentEnv::new();
    let missing = app_yaml(&env.uuid(1), "missing", 1, "hello", "").replace(
        "hello:latest",
        &format!("127.0.0.1:{}/outpost/nothing:1", registry.port),
    );
    let down = app_yaml(&env.uuid(2), "down", 2, "hello", "").replace(
        "hello:latest",
        &format!("127.0.0.1:{closed}/outpost/hello:1"),
    );
    let good = app_yaml(&env.uuid(3), "good", 3, "hello", "");
    config(&env, 1, &[missing, down, good]);
    env.start_agent();
    let l = env.wait_for("both failures retried", T, |l| {
        let retried = |name: &str| {
            l.iter()
                .any(|a| a.display_name == name && a.error.as_ref().is_some_and(|e| e.retries >= 1))
        };
        retried("missing") && retried("down")
    });
    let err = |name: &str| {
        l.iter()
            .find(|a| a.display_name == name)
            .and_then(|a| a.error.clone())
            .unwrap()
    };
    let (m, d) = (err("missing"), err("down"));
    eprintln!("missing: {m:?}\ndown: {d:?}");
    assert!(
        m.message.contains("nothing") && m.message.contains("not found"),
        "{}",
        m.message
    );
    assert_eq!(m.severity, outpost_api::Severity::Error);
    assert!(
        d.message.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        d.message
    );
    assert_eq!(d.severity, outpost_api::Severity::Notice);
    assert!(l
        .iter()
        .any(|a| a.display_name == "good" && a.state == SwState::Running));
    rt.block_on(env.teardown());
    drop(registry);
}
