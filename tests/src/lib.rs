//! Shared harness for Outpost's end-to-end tests. Everything here drives
//! real components: a user containerd started through
//! `outpost_runtime::instance::UserInstance` under a private root, runc,
//! images built by `outpost-ocibuild` from `images/`.
//!
//! Tests need root (namespaces, overlayfs, cgroups); they fail loudly
//! without it rather than pass by skipping.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use outpost_api::AppConfig;
use outpost_runtime::image::ImageRecord;
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::{Containerd, Layout, Runtime, TaskIo};

pub mod agent;
pub mod browser;
pub mod controller;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Panics unless running as root: these tests drive real containers.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests drive real containerd/runc and must run as root (make test does)"
    );
}

/// All images under `images/`, built once per test process.
pub fn image_dir(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let out = BUILT.get_or_init(|| {
        let base = workspace().join("target/test-images");
        // Per process (test binaries run concurrently); drop dead ones' dirs.
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = e.file_name().to_string_lossy().parse::<u32>().unwrap_or(0);
            if pid != 0 && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let out = base.join(std::process::id().to_string());
        outpost_ocibuild::build_all(&workspace().join("images"), &out).expect("building images/");
        out
    });
    let dir = out.join(name);
    assert!(
        dir.join("index.json").exists(),
        "no image {name} under images/"
    );
    dir
}

/// A private user containerd and runtime under a temp root.
pub struct TestEnv {
    /// Temp root (dropped last).
    pub dir: tempfile::TempDir,
    /// Paths under the root.
    pub layout: Layout,
    /// The supervised instance.
    pub instance: Option<UserInstance>,
    /// The runtime over it.
    pub runtime: Runtime,
    tasks: Mutex<Vec<String>>,
}

impl TestEnv {
    /// Starts a fresh user containerd under a new temp root.
    pub async fn start() -> TestEnv {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("outpost-t")
            .tempdir_in("/tmp")
            .unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let opts = InstanceOptions::with_log_file(dir.path().join("logs/containerd.log"));
        let (instance, client) = UserInstance::start(&layout, opts)
            .await
            .expect("starting user containerd");
        let runtime = Runtime::new(client, layout.clone());
        TestEnv {
            dir,
            layout,
            instance: Some(instance),
            runtime,
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The containerd client.
    pub fn client(&self) -> &Containerd {
        self.runtime.client()
    }

    /// Imports `images/<name>` as `<name>:latest`.
    pub async fn import(&self, name: &str) -> ImageRecord {
        self.runtime
            .import_layout(&image_dir(name), &format!("{name}:latest"))
            .await
            .unwrap_or_else(|e| panic!("importing {name}: {e}"))
    }

    /// An app config with a fresh UUID.
    pub fn app(&self, name: &str, image: &str) -> AppConfig {
        let app: AppConfig = serde_json::from_value(serde_json::json!({
            "uuid": uuid::Uuid::new_v4().to_string(),
            "version": "1",
            "display_name": name,
            "app_num": 1,
            "image": format!("{image}:latest"),
            "resources": { "memory_kib": 65536, "vcpus": 1 },
            "stop_timeout": "5s",
        }))
        .unwrap();
        self.tasks.lock().unwrap().push(app.task_id());
        app
    }

    /// Log files for a task under the temp root.
    pub fn io(&self, task_id: &str) -> TaskIo {
        let d = self.dir.path().join("logs");
        let io = TaskIo {
            stdout: d.join(format!("{task_id}.out")),
            stderr: d.join(format!("{task_id}.err")),
        };
        for p in [&io.stdout, &io.stderr] {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap();
        }
        io
    }

    /// Creates and starts `app`; returns the PID.
    pub async fn run(&self, app: &AppConfig) -> u32 {
        self.runtime
            .create_app(app, 1, &self.io(&app.task_id()))
            .await
            .expect("create_app");
        self.runtime.start(&app.task_id()).await.expect("start")
    }

    /// Runs a shell script in task `id` (20 s timeout) and returns its output.
    pub async fn sh(&self, id: &str, script: &str) -> outpost_runtime::task::ExecOutput {
        let args = ["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
        self.runtime
            .exec(id, &args, Duration::from_secs(20))
            .await
            .expect("exec")
    }

    /// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
    pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes every app container and volume, then stops containerd.
    pub async fn teardown(mut self) {
        if let Ok(apps) = self.runtime.list().await {
            for a in apps {
                let _ = self.runtime.remove_container(&a).await;
                let _ = self.runtime.remove_volume(&a.volume_dir).await;
            }
        }
        if let Some(i) = self.instance.take() {
            i.kill().await;
        }
    }
}

impl Drop for TestEnv {
    /// Best effort after a failed test: kill what this env started (task
    /// cgroups, shims and containerd under the temp root) and unmount.
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap().iter() {
            for pid in cgroup_pids(t) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let root = self.dir.path().display().to_string();
        for pid in pids_with_cmdline(&root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(100));
        for m in outpost_runtime::mount::mounts_under(self.dir.path())
            .into_iter()
            .rev()
        {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        for t in self.tasks.lock().unwrap().iter() {
            for ctl in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                let _ = std::fs::remove_dir(ctl.path().join("eve-user-apps").join(t));
            }
        }
    }
}

/// PIDs in the memory cgroup of task `task_id` (cgroup v1 layout).
pub fn cgroup_pids(task_id: &str) -> Vec<i32> {
    let p = format!("/sys/fs/cgroup/memory/eve-user-apps/{task_id}/cgroup.procs");
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// PIDs whose command line contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(pid);
        }
    }
    out
}

/// Reads a file as text (empty when missing).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A binary of the workspace built next to the test binaries
/// (`cargo build --workspace`, which `make test` runs first).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` first (make test does)",
        bin.display()
    );
    bin
}

/// A real memlogd process on sockets under `dir`.
pub struct Memlogd {
    /// The daemon.
    pub child: std::process::Child,
    /// Write-side socket.
    pub log_socket: PathBuf,
    /// Query socket.
    pub query_socket: PathBuf,
}

impl Memlogd {
    /// Starts `memlogd` on sockets in `dir` with `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Memlogd {
        Memlogd::start_at(&dir.join("memlogd.sock"), &dir.join("memlogdq.sock"), extra)
    }

    /// Starts `memlogd` on the given sockets and waits until it answers.
    // The child is reaped by `Drop` (kill + wait), which the lint cannot see.
    #[allow(clippy::zombie_processes)]
    pub fn start_at(log_socket: &Path, query_socket: &Path, extra: &[&str]) -> Memlogd {
        let (log_socket, query_socket) = (log_socket.to_path_buf(), query_socket.to_path_buf());
        let child = std::process::Command::new(workspace_bin("memlogd"))
            .arg("-socket-log")
            .arg(&log_socket)
            .arg("-socket-query")
            .arg(&query_socket)
            .args(extra)
            .spawn()
            .expect("starting memlogd");
        for _ in 0..200 {
            if memlogd::stats(&query_socket).is_ok() {
                return Memlogd {
                    child,
                    log_socket,
                    query_socket,
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("memlogd did not come up at {}", query_socket.display());
    }

    /// Messages memlogd holds for `source`.
    pub fn lines(&self, source: &str) -> Vec<String> {
        memlogd::dump(&self.query_socket, Some(source))
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.msg)
            .collect()
    }
}

impl Drop for Memlogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small deterministic PRNG (xorshift64*) for randomised tests; the seed
/// is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        eprintln!("Rng seed: {seed}");
        Rng(seed.max(1))
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Peak resident memory (VmHWM) of process `pid`, KiB (0 when it is gone).
pub fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
