//! Starts the user containerd instance and keeps it running.
//!
//! EVE exits fatally when its user containerd dies and lets the watchdog
//! reboot the device. Outpost restarts it with backoff instead: shims are
//! separate processes, so running tasks survive and containerd reconnects to
//! them when it comes back.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{Containerd, USER_NAMESPACE};
use crate::error::{Result, RuntimeError};
use crate::layout::Layout;

/// Makes the stdout/stderr handle for each containerd start (a memlogd pipe
/// on a device, a file in development).
pub type LogSink = Arc<dyn Fn() -> std::io::Result<Stdio> + Send + Sync>;

/// How to run the user instance.
#[derive(Clone)]
pub struct InstanceOptions {
    /// The `containerd` binary.
    pub binary: PathBuf,
    /// Where its output goes.
    pub log: LogSink,
    /// How long a start may take before it counts as failed.
    pub ready_timeout: Duration,
    /// First restart delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest restart delay.
    pub max_backoff: Duration,
}

impl InstanceOptions {
    /// Defaults with output appended to `log_file` (truncated at each start,
    /// so it stays bounded by one run's output).
    pub fn with_log_file(log_file: PathBuf) -> Self {
        InstanceOptions {
            binary: PathBuf::from("containerd"),
            log: Arc::new(move || {
                let f = std::fs::File::create(&log_file)?;
                Ok(Stdio::from(f))
            }),
            ready_timeout: Duration::from_secs(20),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Health of the supervised instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Answering on its socket.
    Up,
    /// Died; a restart is pending or in progress.
    Restarting,
}

/// The supervised user containerd. Dropping it stops supervision but leaves
/// containerd running (the next agent adopts it); call [`UserInstance::kill`]
/// to stop it too.
pub struct UserInstance {
    socket: PathBuf,
    pid_file: PathBuf,
    restarts: Arc<AtomicU32>,
    state: watch::Receiver<InstanceState>,
    task: JoinHandle<()>,
}

impl UserInstance {
    /// Starts (or adopts an already running) user containerd for `layout`
    /// and returns once it answers.
    pub async fn start(
        layout: &Layout,
        opts: InstanceOptions,
    ) -> Result<(UserInstance, Containerd)> {
        for dir in [
            layout.user_state(),
            layout.user_root(),
            layout.runc_root(),
            layout.runsc_root(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("creating", &dir, e))?;
        }
        let cfg = layout.user_config();
        let toml = super::config::render(
            &layout.user_root(),
            &layout.user_state(),
            &layout.user_socket(),
        );
        write_atomic(&cfg, toml.as_bytes())?;
        let socket = layout.user_socket();
        let pid_file = layout.user_state().join("containerd.pid");

        let adopted = match read_pid(&pid_file) {
            Some(pid) if pid_alive(pid) => {
                Containerd::connect_wait(&socket, USER_NAMESPACE, Duration::from_secs(2))
                    .await
                    .ok()
                    .map(|c| (pid, c))
            }
            _ => None,
        };
        let (child, client) = match adopted {
            Some((pid, client)) => {
                tracing::info!(pid, socket = %socket.display(), "adopted running user containerd");
                (Running::Adopted(pid), client)
            }
            None => {
                let child = spawn(&opts, &cfg, &socket, &pid_file).await?;
                let client =
                    Containerd::connect_wait(&socket, USER_NAMESPACE, opts.ready_timeout).await?;
                (Running::Child(child), client)
            }
        };
        let restarts = Arc::new(AtomicU32::new(0));
        let (tx, rx) = watch::channel(InstanceState::Up);
        let task = tokio::spawn(supervise(
            child,
            opts,
            cfg,
            socket.clone(),
            pid_file.clone(),
            restarts.clone(),
            tx,
        ));
        Ok((
            UserInstance {
                socket,
                pid_file,
                restarts,
                state: rx,
                task,
            },
            client,
        ))
    }

    /// How many times the instance has been restarted by this supervisor.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Current health.
    pub fn state(&self) -> InstanceState {
        *self.state.borrow()
    }

    /// A receiver that changes when the instance goes down or comes back.
    pub fn watch(&self) -> watch::Receiver<InstanceState> {
        self.state.clone()
    }

    /// The containerd PID, if known.
    pub fn pid(&self) -> Option<i32> {
        read_pid(&self.pid_file)
    }

    /// The instance's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops supervising and terminates containerd (SIGTERM, then SIGKILL
    /// after 5 s). Running shims and tasks are not touched.
    pub async fn kill(self) {
        self.task.abort();
        if let Some(pid) = read_pid(&self.pid_file) {
            terminate(pid).await;
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

impl Drop for UserInstance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Running {
    Child(Child),
    Adopted(i32),
}

impl Running {
    /// Resolves when the process is gone.
    async fn exited(&mut self) -> String {
        match self {
            Running::Child(c) => match c.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("wait failed: {e}"),
            },
            Running::Adopted(pid) => {
                // Not our child: watch its /proc entry (once a second is cheap).
                while pid_alive(*pid) {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                "exited (adopted process)".into()
            }
        }
    }
}

async fn supervise(
    mut running: Running,
    opts: InstanceOptions,
    cfg: PathBuf,
    socket: PathBuf,
    pid_file: PathBuf,
    restarts: Arc<AtomicU32>,
    state: watch::Sender<InstanceState>,
) {
    let mut backoff = opts.min_backoff;
    loop {
        let up_since = tokio::time::Instant::now();
        let how = running.exited().await;
        let _ = state.send(InstanceState::Restarting);
        if up_since.elapsed() > Duration::from_secs(60) {
            backoff = opts.min_backoff;
        }
        tracing::warn!(status = %how, delay_ms = backoff.as_millis() as u64, "user containerd died; restarting");
        loop {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(opts.max_backoff);
            let started = async {
                let child = spawn(&opts, &cfg, &socket, &pid_file).await?;
                Containerd::connect_wait(&socket, USER_NAMESPACE, opts.ready_timeout).await?;
                Ok::<_, RuntimeError>(child)
            };
            match started.await {
                Ok(child) => {
                    running = Running::Child(child);
                    restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("user containerd is back");
                    let _ = state.send(InstanceState::Up);
                    break;
                }
                Err(e) => tracing::error!(error = %e, "restarting user containerd failed"),
            }
        }
    }
}

async fn spawn(
    opts: &InstanceOptions,
    cfg: &Path,
    socket: &Path,
    pid_file: &Path,
) -> Result<Child> {
    // A stale socket from a dead instance makes containerd refuse to start.
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_file(format!("{}.ttrpc", socket.display()));
    let out = (opts.log)().map_err(|e| RuntimeError::Instance(format!("log sink: {e}")))?;
    let err = (opts.log)().map_err(|e| RuntimeError::Instance(format!("log sink: {e}")))?;
    let child = Command::new(&opts.binary)
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Own process group: a Ctrl-C or group kill aimed at the agent must
        // not take the apps' containerd with it.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| RuntimeError::Instance(format!("spawning {}: {e}", opts.binary.display())))?;
    if let Some(pid) = child.id() {
        write_atomic(pid_file, pid.to_string().as_bytes())?;
    }
    Ok(child)
}

fn read_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// True when `pid` exists and is a containerd (not a recycled PID).
fn pid_alive(pid: i32) -> bool {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(_) => return false,
    };
    // Zombies are dead for our purposes.
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, r)| r.trim_start())
        .unwrap_or("");
    if after_comm.starts_with('Z') || after_comm.starts_with('X') {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "containerd")
        .unwrap_or(false)
}

async fn terminate(pid: i32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    for _ in 0..50 {
        if !pid_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Writes via a temp file and rename, so readers never see half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).map_err(|e| RuntimeError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| RuntimeError::io("renaming into place", path, e))
}
