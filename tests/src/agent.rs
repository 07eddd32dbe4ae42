//! `outpostd` as a process under a private root, with a real memlogd, its
//! own user containerd, images from `images/`, and the `outpost` CLI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outpost_api::{AppStatus, SwState};
use outpost_runtime::{Containerd, Layout, Runtime, USER_NAMESPACE};

use crate::{image_dir, pids_with_cmdline, require_root, workspace_bin, Memlogd};

/// A device under a temp root: memlogd + outpostd (+ its user containerd).
pub struct AgentEnv {
    /// Temp root.
    pub dir: tempfile::TempDir,
    /// Paths under the root.
    pub layout: Layout,
    /// The memlogd process.
    pub memlogd: Option<Memlogd>,
    /// The agent process.
    pub agent: Option<Child>,
    /// Extra outpostd flags.
    pub flags: Vec<String>,
    /// Times the agent was started.
    pub starts: u32,
    /// Whether the running agent watches the config file.
    pub watching: bool,
    /// Random part of this env's app UUIDs (tests run in parallel and
    /// cgroup paths are global).
    pub salt: u32,
}

impl AgentEnv {
    /// A root with memlogd running and the images built; the agent is not started.
    pub fn new() -> AgentEnv {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("outpost-a")
            .tempdir_in("/tmp")
            .unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.root().join("run")).unwrap();
        std::fs::create_dir_all(layout.root().join("etc")).unwrap();
        let memlogd = Memlogd::start_at(
            &layout.memlogd_log_socket(),
            &layout.memlogd_query_socket(),
            &[],
        );
        let _ = image_dir("hello");
        AgentEnv {
            dir,
            layout,
            memlogd: Some(memlogd),
            agent: None,
            flags: vec![
                "--backoff-initial-ms".into(),
                "400".into(),
                "--backoff-max-ms".into(),
                "3000".into(),
                "--resync-secs".into(),
                "5".into(),
            ],
            starts: 0,
            watching: false,
            salt: rand_u32(),
        }
    }

    /// The UUID of this env's app number `n`.
    pub fn uuid(&self, n: u32) -> String {
        format!("{:08x}-{n:04x}-4000-8000-000000000000", self.salt)
    }

    /// The watched config file.
    pub fn config_path(&self) -> PathBuf {
        self.layout.root().join("etc/device.yaml")
    }

    /// Replaces the config file atomically (as an editor or provisioning tool would).
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.layout.root().join("etc/.device.yaml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    /// Starts outpostd watching the config file.
    pub fn start_agent(&mut self) {
        self.start_agent_with(true);
    }

    /// Starts outpostd, with or without the config file source.
    pub fn start_agent_with(&mut self, config_file: bool) {
        assert!(self.agent.is_none(), "agent already running");
        let images = image_dir("hello").parent().unwrap().to_path_buf();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.layout.root().join("outpostd.log"))
            .unwrap();
        let mut cmd = Command::new(workspace_bin("outpostd"));
        cmd.arg("--root")
            .arg(self.layout.root())
            .arg("--images")
            .arg(images)
            .args(&self.flags);
        if config_file {
            cmd.arg("--config-file").arg(self.config_path());
        }
        self.watching = config_file;
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap();
        self.agent = Some(child);
        self.starts += 1;
    }

    /// The agent's log so far.
    pub fn agent_log(&self) -> String {
        std::fs::read_to_string(self.layout.root().join("outpostd.log")).unwrap_or_default()
    }

    /// SIGKILLs the agent (apps and containerd keep running).
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the agent and waits for it.
    pub fn stop_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Runs the `outpost` CLI; returns (exit code, stdout, stderr).
    pub fn outpost(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(workspace_bin("outpost"))
            .arg("--root")
            .arg(self.layout.root())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `outpost list --json`, empty while the agent does not answer.
    pub fn list(&self) -> Vec<AppStatus> {
        let (code, out, _) = self.outpost(&["list", "--json"]);
        if code != 0 {
            return Vec::new();
        }
        serde_json::from_str(&out).unwrap_or_default()
    }

    /// One app's status by name.
    pub fn app(&self, name: &str) -> Option<AppStatus> {
        self.list().into_iter().find(|a| a.display_name == name)
    }

    /// The agent's info (`outpost version --json`), if it answers.
    pub fn info(&self) -> Option<outpost_agent::admin::types::Info> {
        let (code, out, _) = self.outpost(&["version", "--json"]);
        if code != 0 {
            return None;
        }
        serde_json::from_str(&out).ok()
    }

    /// Config documents the running agent has evaluated so far (0 when it
    /// does not answer).
    pub fn configs_evaluated(&self) -> u64 {
        self.info().map(|i| i.configs_evaluated).unwrap_or(0)
    }

    /// Waits until the agent has evaluated at least `min_evaluated` config
    /// documents and a reconcile pass that began after the last of them
    /// found nothing to do: the observable "it has acted on everything"
    /// that negative checks wait for instead of a fixed sleep.
    pub fn wait_settled(&self, min_evaluated: u64, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let info = self.info();
            if info.as_ref().is_some_and(|i| i.settled(min_evaluated)) {
                return;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "the agent did not settle after {min_evaluated} config documents: {info:?}\nagent log tail:\n{}",
                    tail(&self.agent_log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `f` on the app list every 100 ms until it holds.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&[AppStatus]) -> bool,
    ) -> Vec<AppStatus> {
        self.wait_for_every(what, timeout, Duration::from_millis(100), f)
    }

    /// Polls `f` on the app list every `every` until it holds (a short
    /// period for tests that measure latencies).
    pub fn wait_for_every(
        &self,
        what: &str,
        timeout: Duration,
        every: Duration,
        f: impl Fn(&[AppStatus]) -> bool,
    ) -> Vec<AppStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let l = self.list();
            if f(&l) {
                return l;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; apps: {:#?}\nagent log tail:\n{}",
                    l.iter()
                        .map(|a| (&a.display_name, a.state, &a.error))
                        .collect::<Vec<_>>(),
                    tail(&self.agent_log(), 30)
                );
            }
            std::thread::sleep(every);
        }
    }

    /// Waits until every named app is RUNNING.
    pub fn wait_running(&self, names: &[&str], timeout: Duration) -> Vec<AppStatus> {
        self.wait_for(&format!("{names:?} RUNNING"), timeout, |l| {
            names.iter().all(|n| {
                l.iter()
                    .any(|a| a.display_name == *n && a.state == SwState::Running)
            })
        })
    }

    /// A runtime handle on the agent's user containerd (an independent view).
    pub async fn runtime(&self) -> Runtime {
        let c = Containerd::connect_wait(
            &self.layout.user_socket(),
            USER_NAMESPACE,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        Runtime::new(c, self.layout.clone())
    }

    /// Stops the agent, removes every app through a config without apps,
    /// then stops containerd and memlogd.
    pub async fn teardown(mut self) {
        if self.agent.is_some() && self.watching {
            self.write_config("generation: 999999999\napps: []\n");
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.wait_for("no apps", Duration::from_secs(60), |l| l.is_empty())
            }));
        }
        self.stop_agent();
        if let Ok(rt) = tokio::time::timeout(Duration::from_secs(5), self.runtime()).await {
            for a in rt.list().await.unwrap_or_default() {
                let _ = rt.remove_container(&a).await;
                let _ = rt.remove_volume(&a.volume_dir).await;
            }
        }
    }
}

impl Drop for AgentEnv {
    fn drop(&mut self) {
        self.kill_agent();
        let root = self.dir.path().display().to_string();
        // Task processes: every cgroup whose tasks run from a rootfs under our root.
        for task in std::fs::read_dir("/sys/fs/cgroup/memory/eve-user-apps")
            .into_iter()
            .flatten()
            .flatten()
        {
            let procs =
                std::fs::read_to_string(task.path().join("cgroup.procs")).unwrap_or_default();
            let ours = procs
                .lines()
                .filter_map(|p| p.trim().parse::<i32>().ok())
                .any(|pid| {
                    std::fs::read_link(format!("/proc/{pid}/root"))
                        .map(|r| r.starts_with(&root))
                        .unwrap_or(false)
                });
            if ours {
                for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        for pid in pids_with_cmdline(&root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.memlogd.take();
        std::thread::sleep(Duration::from_millis(200));
        for m in outpost_runtime::mount::mounts_under(self.dir.path())
            .into_iter()
            .rev()
        {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for t in std::fs::read_dir(ctl.path().join("eve-user-apps"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_dir(t.path());
            }
        }
    }
}

impl Default for AgentEnv {
    fn default() -> Self {
        AgentEnv::new()
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A YAML app entry for the test configs.
pub fn app_yaml(uuid: &str, name: &str, num: u32, image: &str, extra: &str) -> String {
    format!(
        "  - uuid: {uuid}\n    version: \"1\"\n    display_name: {name}\n    app_num: {num}\n    image: {image}:latest\n    resources: {{ memory_kib: 32768, vcpus: 1 }}\n    stop_timeout: 3s\n{extra}"
    )
}

/// Everything the agent may leave behind, as a comparable census:
/// (app containers, container volume dirs, own leases, rootfs mount owners,
/// FIFO names).
pub async fn census(
    env: &AgentEnv,
) -> (
    BTreeSet<String>,
    BTreeSet<String>,
    usize,
    BTreeSet<String>,
    BTreeSet<String>,
) {
    let rt = env.runtime().await;
    let containers: BTreeSet<String> = rt
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.task_id)
        .collect();
    let vols: BTreeSet<String> = std::fs::read_dir(env.layout.volumes())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".container"))
        .collect();
    let leases = outpost_runtime::lease::list_own(rt.client())
        .await
        .unwrap()
        .len();
    let mnts: BTreeSet<String> = mounts(env.layout.root())
        .into_iter()
        .map(|m| {
            m.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let fifos: BTreeSet<String> = std::fs::read_dir(env.layout.fifos())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    (containers, vols, leases, mnts, fifos)
}

/// Mounts of the env's root that are still present (leak check).
pub fn mounts(root: &Path) -> Vec<PathBuf> {
    outpost_runtime::mount::mounts_under(root)
}

fn rand_u32() -> u32 {
    let u = uuid::Uuid::new_v4();
    u32::from_be_bytes(u.as_bytes()[..4].try_into().unwrap())
}
