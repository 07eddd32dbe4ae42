//! outpostd: time from a config write to N apps RUNNING (N = 10, 50),
//! beside the same N containers started through the raw runtime API in
//! parallel, in the same run; then the agent's RSS and CPU at idle with
//! the last N apps running. Each N is measured in `BENCH_ROUNDS` (default
//! 3) alternating rounds and the medians compared.
//!
//! `cargo build --release --workspace && target/release/bench-agent [N…]`
//! (uses `outpostd` and `memlogd` from the same target directory;
//! `BENCH_AGENT_LOGS=<dir>` keeps each device's agent log there).
//!
//! `BENCH_BASELINE_OUTPOSTD=<path>` measures another `outpostd` build (an
//! older commit's, say) in the same rounds, config→RUNNING and idle, and
//! prints it beside this one: a before/after on the same host at the same
//! time. It must take the same command line (`--root --images
//! --config-file`) and serve the same admin API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_agent::admin::client::AdminClient;
use outpost_api::{AppConfig, AppStatus, SwState};
use outpost_bench::ms;
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::{Layout, Runtime, TaskIo};

fn app_yaml(salt: &str, n: usize) -> String {
    format!(
        "  - uuid: {salt}-{n:04x}-4000-8000-000000000000\n    version: \"1\"\n    display_name: bench{n}\n    app_num: {n}\n    image: sh:latest\n    resources: {{ memory_kib: 16384, vcpus: 1 }}\n    stop_timeout: 2s\n"
    )
}

struct Device {
    dir: tempfile::TempDir,
    memlogd: Child,
    agent: Child,
    admin: AdminClient,
}

impl Device {
    /// A device watching a local config file, or (with `bundle`) one that
    /// takes its config from the controller whose `/config` bundle it is.
    fn start(bin: &Path, outpostd: &Path, images: &Path, bundle: Option<&Path>) -> Result<Device> {
        let dir = tempfile::Builder::new()
            .prefix("outpost-bench-agent")
            .tempdir_in("/tmp")?;
        let l = Layout::new(dir.path());
        std::fs::create_dir_all(l.root().join("run"))?;
        std::fs::create_dir_all(l.root().join("etc"))?;
        std::fs::write(
            l.root().join("etc/device.yaml"),
            "generation: 1\napps: []\n",
        )?;
        let memlogd = Command::new(bin.join("memlogd"))
            .arg("-socket-log")
            .arg(l.memlogd_log_socket())
            .arg("-socket-query")
            .arg(l.memlogd_query_socket())
            .stderr(Stdio::null())
            .spawn()
            .context("starting memlogd")?;
        let log = std::fs::File::create(l.root().join("outpostd.log"))?;
        let mut cmd = Command::new(outpostd);
        cmd.arg("--root").arg(l.root()).arg("--images").arg(images);
        match bundle {
            Some(b) => {
                std::fs::create_dir_all(l.config_dir())?;
                for e in std::fs::read_dir(b)?.flatten() {
                    std::fs::copy(e.path(), l.config_dir().join(e.file_name()))?;
                }
                std::fs::write(l.config_dir().join("serial"), "bench-push")?;
            }
            None => {
                cmd.arg("--config-file")
                    .arg(l.root().join("etc/device.yaml"));
            }
        }
        let agent = cmd.stderr(log).spawn().context("starting outpostd")?;
        let admin = AdminClient::new(&l.agent_run().join(outpost_agent::admin::SOCKET_NAME));
        Ok(Device {
            dir,
            memlogd,
            agent,
            admin,
        })
    }

    async fn apps(&self) -> Vec<AppStatus> {
        match self.admin.get::<Vec<AppStatus>>("/v1/apps").await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        }
    }

    async fn wait(&self, what: &str, f: impl Fn(&[AppStatus]) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if f(&self.apps().await) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn write_config(&self, gen: u64, body: &str) -> Result<()> {
        let p = self.dir.path().join("etc/device.yaml");
        let tmp = self.dir.path().join("etc/.device.yaml.tmp");
        std::fs::write(&tmp, format!("generation: {gen}\napps:\n{body}"))?;
        std::fs::rename(tmp, p)?;
        Ok(())
    }
}

/// Idle figures of an agent: KiB of RSS, anonymous and file-backed (code
/// pages, shared with the page cache and reclaimable), and CPU percent.
#[derive(Clone, Copy, Debug)]
struct Idle {
    rss_anon: u64,
    rss_file: u64,
    cpu: f64,
}

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: u64| k as f64 / 1024.0;
        write!(
            f,
            "RSS {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB), CPU {:.2}% of one core",
            mib(self.rss_anon + self.rss_file),
            mib(self.rss_anon),
            mib(self.rss_file),
            self.cpu
        )
    }
}

/// CPU ticks (user + system) and (anonymous, file-backed) RSS in KiB.
fn proc_stat(pid: u32) -> (u64, (u64, u64)) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .map(|x| x.1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks, (kib("RssAnon:"), kib("RssFile:")))
}

async fn raw_runtime(images: &Path, n: usize) -> Result<Duration> {
    let dir = tempfile::Builder::new()
        .prefix("outpost-bench-raw")
        .tempdir_in("/tmp")?;
    let layout = Layout::new(dir.path());
    let (inst, client) = UserInstance::start(
        &layout,
        InstanceOptions::with_log_file(dir.path().join("c.log")),
    )
    .await?;
    let rt = Runtime::new(client, layout);
    let salt = format!("{:08x}", std::process::id() ^ 0x5a5a_0000);
    let apps: Vec<AppConfig> = (1..=n)
        .map(|i| serde_json::from_value(serde_json::json!({
            "uuid": format!("{salt}-{i:04x}-4000-8000-000000000001"), "version": "1", "display_name": format!("raw{i}"),
            "app_num": i, "image": "sh:latest", "resources": { "memory_kib": 16384, "vcpus": 1 },
        })).unwrap())
        .collect();
    let io = TaskIo {
        stdout: dir.path().join("out"),
        stderr: dir.path().join("err"),
    };
    std::fs::write(&io.stdout, "")?;
    std::fs::write(&io.stderr, "")?;
    // Like the agent, the import is part of the measured time.
    let t = Instant::now();
    rt.import_layout(&images.join("sh"), "sh:latest").await?;
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let mut set = tokio::task::JoinSet::new();
    for app in apps.clone() {
        let (rt, io, sem) = (rt.clone(), io.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            rt.create_app(&app, 1, &io).await?;
            rt.start(&app.task_id()).await
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let took = t.elapsed();
    for a in rt.list().await? {
        rt.remove_container(&a).await?;
        rt.remove_volume(&a.volume_dir).await?;
    }
    inst.kill().await;
    Ok(took)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let ns = if ns.is_empty() { vec![10, 50] } else { ns };
    let bin: PathBuf = std::env::current_exe()?.parent().unwrap().to_path_buf();
    let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let images_dir = tempfile::tempdir()?;
    outpost_ocibuild::build_all(&ws.join("images"), images_dir.path())?;
    let images = images_dir.path();

    // Each N is measured in rounds, the agent and the raw API alternating,
    // each round on a fresh device and a fresh containerd (so both import
    // the image); the medians are compared.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let this = bin.join("outpostd");
    let baseline = std::env::var_os("BENCH_BASELINE_OUTPOSTD").map(PathBuf::from);
    let mut agents = vec![("outpostd", this.as_path())];
    if let Some(b) = &baseline {
        println!("baseline outpostd: {}", b.display());
        agents.push(("baseline", b.as_path()));
    }
    let mut header = format!("{:<6} {:>26}", "apps", "outpostd: config→RUNNING");
    if baseline.is_some() {
        header += &format!(" {:>26}", "baseline: config→RUNNING");
    }
    header += &format!(" {:>26} {:>8}", "runtime API, 4 parallel", "ratio");
    if baseline.is_some() {
        header += &format!(" {:>9}", "baseline");
    }
    println!("{header}   (median of {rounds} rounds; each round's times in brackets)");
    let mut idle: Vec<(&str, usize, Idle)> = Vec::new();
    for (i, &n) in ns.iter().enumerate() {
        // times[k] for agents[k]; the raw API last.
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); agents.len() + 1];
        for r in 0..rounds {
            let last = i == ns.len() - 1 && r == rounds - 1;
            for (k, (name, agent)) in agents.iter().enumerate() {
                let round = ((i * rounds + r) * agents.len() + k) as u32;
                let (took, at_idle) = agent_round(&bin, agent, images, n, round, last).await?;
                times[k].push(took);
                if let Some(u) = at_idle {
                    idle.push((name, n, u));
                }
            }
            times[agents.len()].push(raw_runtime(images, n).await?);
        }
        let medians: Vec<Duration> = times.iter().map(|t| outpost_bench::median(t)).collect();
        let raw = medians[agents.len()].as_secs_f64();
        let mut row = format!("{n:<6}");
        for m in &medians {
            row += &format!(" {:>26}", ms(*m));
        }
        for m in &medians[..agents.len()] {
            row += &format!(" {:>8.2}x", m.as_secs_f64() / raw);
        }
        let each: Vec<String> = (0..rounds)
            .map(|r| {
                let t: Vec<String> = times
                    .iter()
                    .map(|t| format!("{:.0}", t[r].as_secs_f64() * 1e3))
                    .collect();
                t.join("/")
            })
            .collect();
        println!("{row}   [{}]", each.join(" "));
    }
    for (name, n, u) in idle {
        println!("{name} at idle with {n} apps (10 s window): {u}");
    }
    push_latency(&bin, images, 20).await
}

/// One round of agent `outpostd` on a fresh device: the time from the
/// config write to `n` apps RUNNING; with `idle`, also the agent's RSS and
/// CPU over 10 s with the apps running.
async fn agent_round(
    bin: &Path,
    outpostd: &Path,
    images: &Path,
    n: usize,
    round: u32,
    idle: bool,
) -> Result<(Duration, Option<Idle>)> {
    let dev = Device::start(bin, outpostd, images, None)?;
    dev.wait("agent up", |_| true).await?;
    while dev
        .admin
        .get::<serde_json::Value>("/v1/info")
        .await
        .map(|r| r.is_err())
        .unwrap_or(true)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let salt = format!("{:08x}", std::process::id() + round);
    let body: String = (1..=n).map(|k| app_yaml(&salt, k)).collect();
    let t = Instant::now();
    dev.write_config(2, &body)?;
    dev.wait(&format!("{n} apps RUNNING"), |l| {
        l.iter().filter(|a| a.state == SwState::Running).count() == n
    })
    .await?;
    let took = t.elapsed();
    let mut usage = None;
    if idle {
        let pid = dev.agent.id();
        let (t0, _) = proc_stat(pid);
        let window = Duration::from_secs(10);
        tokio::time::sleep(window).await;
        let (t1, (rss_anon, rss_file)) = proc_stat(pid);
        let hz = 100.0;
        let cpu = (t1 - t0) as f64 / hz / window.as_secs_f64() * 100.0;
        usage = Some(Idle {
            rss_anon,
            rss_file,
            cpu,
        });
    }
    // Remove the apps through the agent, then stop everything.
    dev.write_config(3, "")?;
    dev.wait("apps removed", |l| l.is_empty()).await?;
    dev.stop();
    Ok((took, usage))
}

impl Device {
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.agent.id().to_string())
            .status();
        let _ = self.agent.wait();
        let root = self.dir.path().display().to_string();
        // BENCH_AGENT_LOGS=<dir> keeps each device's agent log (to see where
        // a round's time went).
        if let Some(keep) = std::env::var_os("BENCH_AGENT_LOGS") {
            let name = self.dir.path().file_name().unwrap_or_default();
            let to = Path::new(&keep).join(name).with_extension("log");
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(self.dir.path().join("outpostd.log"), to);
        }
        let _ = Command::new("pkill").args(["-f", &root]).status();
        let _ = self.memlogd.kill();
        let _ = self.memlogd.wait();
    }

    /// Start time of `name`'s current run, when RUNNING.
    async fn started(&self, name: &str) -> Option<String> {
        self.apps()
            .await
            .into_iter()
            .find(|a| a.display_name == name && a.state == SwState::Running)
            .and_then(|a| a.domain)
            .and_then(|d| d.started_at)
            .map(|t| t.to_string())
    }

    /// Applies `apply(counter)` for counters 1..=n and times each until the
    /// restarted task is RUNNING.
    async fn restart_times(
        &self,
        n: u64,
        mut apply: impl FnMut(u64) -> Result<()>,
    ) -> Result<Vec<Duration>> {
        let mut out = Vec::new();
        for k in 1..=n {
            let before = self.started("push").await;
            let t = Instant::now();
            apply(k)?;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let now = self.started("push").await;
                if now.is_some() && now != before {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("restart {k} did not happen");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            out.push(t.elapsed());
        }
        Ok(out)
    }
}

fn push_app(counter: u64) -> String {
    format!(
        "  - uuid: 5e1f0c2a-7b3d-4e9a-8c6f-{:012x}\n    version: \"1\"\n    display_name: push\n    app_num: 1\n    image: sh:latest\n    resources: {{ memory_kib: 16384, vcpus: 1 }}\n    stop_timeout: 2s\n    restart_counter: {counter}\n",
        std::process::id()
    )
}

/// Time from a config change (restart counter) to the new task RUNNING:
/// through the controller (`device set-config`, signed, long-poll) beside
/// the same change written to a local config file, same run.
async fn push_latency(bin: &Path, images: &Path, n: u64) -> Result<()> {
    use outpost_bench::controller::Controller;
    let ctl = Controller::start(&bin.join("outpost-controller"))?;
    let dev = Device::start(bin, &bin.join("outpostd"), images, Some(&ctl.bundle()))?;
    let cfg = dev.dir.path().join("push.yaml");
    let set = |counter: u64| -> Result<()> {
        std::fs::write(&cfg, format!("apps:\n{}", push_app(counter)))?;
        ctl.cli(&["device", "set-config", "bench-push", cfg.to_str().unwrap()])?;
        Ok(())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctl.cli(&["device", "status", "bench-push"]).is_err() {
        if Instant::now() > deadline {
            bail!("the device did not register");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set(0)?;
    dev.wait("push RUNNING", |l| {
        l.iter().any(|a| a.state == SwState::Running)
    })
    .await?;
    let via_ctl = dev.restart_times(n, set).await?;
    std::fs::write(&cfg, "apps: []\n")?;
    ctl.cli(&["device", "set-config", "bench-push", cfg.to_str().unwrap()])?;
    dev.wait("apps removed", |l| l.is_empty()).await?;
    dev.stop();
    drop(ctl);

    let dev = Device::start(bin, &bin.join("outpostd"), images, None)?;
    dev.write_config(2, &push_app(0))?;
    dev.wait("push RUNNING", |l| {
        l.iter().any(|a| a.state == SwState::Running)
    })
    .await?;
    let via_file = dev
        .restart_times(n, |k| dev.write_config(2 + k, &push_app(k)))
        .await?;
    dev.write_config(1000, "")?;
    dev.wait("apps removed", |l| l.is_empty()).await?;
    dev.stop();

    println!();
    println!(
        "config change → restarted task RUNNING, median of {n} (controller long-poll wait 60 s; EVE polls every 18–60 s)"
    );
    outpost_bench::row(
        "controller set-config vs local file",
        outpost_bench::median(&via_ctl),
        outpost_bench::median(&via_file),
    );
    println!(
        "p90: {} via the controller, {} via the file",
        ms(outpost_bench::percentile(&via_ctl, 90.0)),
        ms(outpost_bench::percentile(&via_file, 90.0))
    );
    Ok(())
}
