//! The service supervisor: its own task beside the reconcile loop. It
//! observes the device services in the system containerd
//! (`services.linuxkit`), restarts a *declared* service that exited (with
//! exponential backoff, [`backoff`]), counts restarts, and publishes its
//! view on a `watch` channel. It never touches a container the image did
//! not declare ([`declared`]).
//!
//! It is woken by the system containerd's task events (an exit is seen at
//! once) and by a change of the manifest, and otherwise observes every `poll` (10 s by default: uptime and
//! the memory/CPU figures; also the resync after a dropped event).
//!
//! EVE leaves services to linuxkit's init (no restart); Outpost keeps the
//! declared ones running, as the issue asked.

pub mod backoff;
pub mod declared;
pub mod io;
mod view;

pub use view::ServicesView;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use outpost_api::ServiceStatus;
use outpost_runtime::events::{self, EventStream};
use outpost_runtime::services::{self, ServiceInfo};
use outpost_runtime::task::ExecOutput;
use outpost_runtime::{Containerd, RuntimeError, SYSTEM_NAMESPACE};
use tokio::sync::{mpsc, oneshot, watch};

use self::backoff::{Backoff, BackoffPolicy};

/// Supervisor settings.
#[derive(Clone, Debug)]
pub struct ServicesOptions {
    /// System containerd socket.
    pub socket: PathBuf,
    /// The image's list of declared services.
    pub manifest: PathBuf,
    /// How often services are observed when no task event comes.
    pub poll: Duration,
    /// Restart backoff.
    pub backoff: BackoffPolicy,
    /// SIGTERM grace before SIGKILL on an operator restart.
    pub grace: Duration,
    /// memlogd write socket (output of a service with no log URI).
    pub memlogd_log: PathBuf,
    /// memlogd query socket.
    pub memlogd_query: PathBuf,
    /// Directory for service FIFOs and exec output.
    pub scratch: PathBuf,
}

/// Why an operator restart was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// No such container in `services.linuxkit`.
    #[error("no service named {name:?}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// Close names.
        suggestions: Vec<String>,
    },
    /// The image does not declare it: the agent leaves it alone.
    #[error("service {0} is not declared by the device image; the agent does not touch it")]
    NotDeclared(String),
    /// containerd refused.
    #[error("restarting service {name}: {source}")]
    Runtime {
        /// Service.
        name: String,
        /// What containerd said.
        source: RuntimeError,
    },
    /// The supervisor is gone.
    #[error("the service supervisor is not running")]
    Stopped,
}

enum Command {
    Restart {
        name: String,
        reply: oneshot::Sender<Result<u32, RestartError>>,
    },
}

/// The supervisor's handle for readers (admin API, uploads, checks).
#[derive(Clone, Debug)]
pub struct Handle {
    view: watch::Receiver<ServicesView>,
    commands: mpsc::Sender<Command>,
    socket: PathBuf,
    scratch: PathBuf,
}

impl Handle {
    /// The latest view.
    pub fn view(&self) -> ServicesView {
        self.view.borrow().clone()
    }

    /// A receiver that sees every new view.
    pub fn watch(&self) -> watch::Receiver<ServicesView> {
        self.view.clone()
    }

    /// Restarts service `name` now (declared ones only); returns the new PID.
    pub async fn restart(&self, name: &str) -> Result<u32, RestartError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Restart {
                name: name.to_owned(),
                reply,
            })
            .await
            .map_err(|_| RestartError::Stopped)?;
        rx.await.map_err(|_| RestartError::Stopped)?
    }

    /// Runs `args` in service `name`, output captured.
    pub async fn exec(
        &self,
        name: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let client = Containerd::connect(&self.socket, SYSTEM_NAMESPACE).await?;
        services::exec(&client, name, args, &self.scratch, timeout).await
    }
}

/// Starts the supervisor task (it runs until the runtime stops). A system
/// containerd that is not there yet is retried every poll; the agent and
/// its apps do not depend on it.
pub fn spawn(opts: ServicesOptions) -> Handle {
    let (tx, view) = watch::channel(ServicesView {
        socket: opts.socket.display().to_string(),
        manifest: opts.manifest.display().to_string(),
        ..ServicesView::default()
    });
    let (commands, rx) = mpsc::channel(8);
    let handle = Handle {
        view,
        commands,
        socket: opts.socket.clone(),
        scratch: opts.scratch.join("exec"),
    };
    let sup = Supervisor {
        opts,
        client: None,
        tx,
        state: BTreeMap::new(),
        observations: 0,
        events: None,
    };
    tokio::spawn(sup.run(rx));
    handle
}

#[derive(Default)]
struct PerService {
    backoff: Backoff,
    restarts: u32,
    error: Option<String>,
}

struct Supervisor {
    opts: ServicesOptions,
    /// Connected on the first pass that finds the socket.
    client: Option<Containerd>,
    tx: watch::Sender<ServicesView>,
    state: BTreeMap<String, PerService>,
    observations: u64,
    /// Task events of `services.linuxkit`, once connected.
    events: Option<EventStream>,
}

/// Bound of the task-event queue; an overflow is counted and the next
/// observation resyncs.
const EVENT_QUEUE: usize = 64;

/// How soon a system containerd that is not reachable is tried again.
const RECONNECT: Duration = Duration::from_secs(2);

impl Supervisor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        tracing::info!(socket = %self.opts.socket.display(), manifest = %self.opts.manifest.display(), "service supervisor running");
        // A changed manifest (an image update, a developer's edit) is read
        // at once; its content is read again by the pass.
        let (manifest_tx, mut manifest_changed) = mpsc::channel(1);
        let _watch = super::file_watch::watch(self.opts.manifest.clone(), manifest_tx, drop);
        loop {
            let next = self.pass().await;
            let poll = if self.client.is_some() {
                self.opts.poll
            } else {
                self.opts.poll.min(RECONNECT)
            };
            let wait = next
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(poll)
                .min(poll);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Restart { name, reply }) => {
                        let r = self.operator_restart(&name).await;
                        let _ = reply.send(r);
                    }
                    None => return,
                },
                Some(ev) = next_event(&mut self.events) => {
                    tracing::debug!(?ev, "system task event");
                    // One observation covers whatever else is queued.
                    if let Some(e) = self.events.as_mut() {
                        while e.rx.try_recv().is_ok() {}
                    }
                }
                Some(_) = manifest_changed.recv() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One observation: restart what is due, publish; returns the earliest
    /// scheduled restart.
    async fn pass(&mut self) -> Option<Instant> {
        let (declared, manifest_error) = match declared::load(&self.opts.manifest) {
            Ok(d) => (d, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let found = declared.is_some();
        let declared = declared.unwrap_or_default();
        let client = match self.connect().await {
            Ok(c) => c,
            Err(e) => {
                self.publish(
                    &declared,
                    found,
                    &[],
                    Some(e.to_string()),
                    manifest_error.clone(),
                );
                return None;
            }
        };
        let mut observed = match services::list(&client).await {
            Ok(o) => o,
            Err(e) => {
                self.publish(
                    &declared,
                    found,
                    &[],
                    Some(e.to_string()),
                    manifest_error.clone(),
                );
                return None;
            }
        };
        let now = Instant::now();
        let mut restarted = false;
        let down: Vec<(String, String)> = declared::to_restart(&declared, &observed)
            .into_iter()
            .filter_map(|n| observed.iter().find(|s| s.name == n))
            .map(|s| (s.name.clone(), s.stdout.clone()))
            .collect();
        for (name, stdout) in down {
            let p = self.opts.backoff;
            let st = self.state.entry(name.clone()).or_default();
            st.backoff.exited(&p, now);
            if !st.backoff.due(now) {
                continue;
            }
            let attempt = st.backoff.attempts;
            let r = self.restart_one(&name, &stdout).await;
            let st = self.state.entry(name.clone()).or_default();
            match r {
                Ok(pid) => {
                    st.restarts += 1;
                    st.error = None;
                    st.backoff.started(Instant::now());
                    restarted = true;
                    tracing::info!(service = %name, pid, attempt, restarts = st.restarts, "restarted declared service");
                }
                Err(e) => {
                    st.backoff.failed(&p, Instant::now());
                    tracing::warn!(service = %name, attempt, error = %e, "restarting declared service failed");
                    st.error = Some(e.to_string());
                }
            }
        }
        for s in &observed {
            if !declared::is_down(s) {
                if let Some(st) = self.state.get_mut(&s.name) {
                    st.backoff.next_at = None;
                }
            }
        }
        if restarted {
            if let Ok(o) = services::list(&client).await {
                observed = o;
            }
        }
        self.observations += 1;
        self.publish(&declared, found, &observed, None, manifest_error);
        self.state.values().filter_map(|s| s.backoff.next_at).min()
    }

    /// Restarts `name`, whose task's stdout was `stdout`: a log URI is
    /// reused by the runtime; otherwise output goes to memlogd FIFOs.
    #[tracing::instrument(level = "info", skip(self, stdout), fields(action = "restart"))]
    async fn restart_one(&mut self, name: &str, stdout: &str) -> Result<u32, RuntimeError> {
        let client = self.connect().await?;
        let fallback = if services::is_log_uri(stdout) {
            None
        } else {
            self.fallback_io(name).await
        };
        services::restart(&client, name, self.opts.grace, fallback.as_ref()).await
    }

    /// The system containerd, connecting when not yet connected.
    async fn connect(&mut self) -> Result<Containerd, RuntimeError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let c = Containerd::connect(&self.opts.socket, SYSTEM_NAMESPACE).await?;
        tracing::info!(socket = %self.opts.socket.display(), "connected to the system containerd");
        self.events = Some(events::subscribe(c.clone(), EVENT_QUEUE));
        self.client = Some(c.clone());
        Ok(c)
    }

    async fn fallback_io(&self, name: &str) -> Option<services::ServiceIo> {
        let (log, query, dir, name) = (
            self.opts.memlogd_log.clone(),
            self.opts.memlogd_query.clone(),
            self.opts.scratch.join("fifos"),
            name.to_owned(),
        );
        tokio::task::spawn_blocking(move || io::service_io(&log, &query, &dir, &name))
            .await
            .ok()
            .flatten()
    }

    async fn operator_restart(&mut self, name: &str) -> Result<u32, RestartError> {
        let declared = declared::load(&self.opts.manifest)
            .ok()
            .flatten()
            .unwrap_or_default();
        let view = self.tx.borrow().clone();
        let client = self
            .connect()
            .await
            .map_err(|source| RestartError::Runtime {
                name: name.to_owned(),
                source,
            })?;
        let stdout = match services::get(&client, name).await {
            Ok(Some(s)) => s.stdout,
            Ok(None) => {
                return Err(RestartError::NotFound {
                    name: name.to_owned(),
                    suggestions: view.suggest(name),
                })
            }
            Err(source) => {
                return Err(RestartError::Runtime {
                    name: name.to_owned(),
                    source,
                })
            }
        };
        if !declared.contains(name) {
            return Err(RestartError::NotDeclared(name.to_owned()));
        }
        let r = self.restart_one(name, &stdout).await;
        let st = self.state.entry(name.to_owned()).or_default();
        match r {
            Ok(pid) => {
                st.restarts += 1;
                st.error = None;
                st.backoff.started(Instant::now());
                tracing::info!(service = name, pid, "service restarted by operator");
                self.pass().await;
                Ok(pid)
            }
            Err(source) => Err(RestartError::Runtime {
                name: name.to_owned(),
                source,
            }),
        }
    }

    fn publish(
        &self,
        declared: &BTreeSet<String>,
        manifest_found: bool,
        observed: &[ServiceInfo],
        error: Option<String>,
        manifest_error: Option<String>,
    ) {
        let connected = error.is_none();
        let now = Instant::now();
        let mut services: Vec<ServiceStatus> = observed
            .iter()
            .map(|s| {
                let st = self.state.get(&s.name);
                ServiceStatus {
                    name: s.name.clone(),
                    state: s.state_name().to_owned(),
                    declared: declared.contains(&s.name),
                    pid: s.pid,
                    started_at: s.started_at.map(to_offset),
                    exit_status: s.exit_status,
                    memory_bytes: s.memory_bytes,
                    cpu_ns: s.cpu_ns,
                    restarts: st.map(|s| s.restarts).unwrap_or(0),
                    next_restart_ms: st
                        .and_then(|s| s.backoff.next_at)
                        .filter(|_| declared::is_down(s))
                        .map(|at| at.saturating_duration_since(now).as_millis() as u64),
                    error: st.and_then(|s| s.error.clone()),
                }
            })
            .collect();
        if connected {
            for m in declared::missing(declared, observed) {
                services.push(ServiceStatus {
                    name: m.to_owned(),
                    state: "MISSING".into(),
                    declared: true,
                    pid: 0,
                    started_at: None,
                    exit_status: None,
                    memory_bytes: None,
                    cpu_ns: None,
                    restarts: 0,
                    next_restart_ms: None,
                    error: Some("declared by the image but init created no container".into()),
                });
            }
        }
        self.tx.send_replace(ServicesView {
            socket: self.opts.socket.display().to_string(),
            manifest: self.opts.manifest.display().to_string(),
            manifest_found,
            declared: declared.iter().cloned().collect(),
            services,
            connected,
            error,
            manifest_error,
            observations: self.observations,
            events_dropped: self
                .events
                .as_ref()
                .map_or(0, |e| e.dropped.load(std::sync::atomic::Ordering::Relaxed)),
        });
    }
}

/// The next system task event, or never when not subscribed.
async fn next_event(events: &mut Option<EventStream>) -> Option<events::TaskEvent> {
    match events {
        Some(e) => match e.rx.recv().await {
            Some(ev) => Some(ev),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

fn to_offset(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}
