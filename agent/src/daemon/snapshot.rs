//! What the loop publishes and what it is told.
//!
//! The reconcile loop owns the device's state. Everyone else gets an
//! immutable [`Snapshot`] from a `watch` channel (the admin API, the
//! controller link's uploaders, `outpost check`) and talks back through
//! [`Event`]s on a bounded channel; the controller link reports its own
//! state on a `watch` of [`LinkView`] that the loop folds into the snapshot.
//! No lock is shared between them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use outpost_api::{AppStatus, DeviceConfig, RejectedApp};
use outpost_cloud::LogQueue;
use outpost_runtime::{Layout, Runtime};
use outpost_store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use crate::admin::types::{CertView, ControllerView, Info, NetworkView};

pub use outpost_store::CounterKind;

/// The config in effect and where it came from.
#[derive(Clone, Debug)]
pub struct Current {
    /// Valid apps of the document.
    pub config: DeviceConfig,
    /// Apps left out, with their problems.
    pub rejected: Vec<RejectedApp>,
    /// `file:/path`, `checkpoint`, …
    pub origin: String,
}

/// memlogd's sockets.
#[derive(Clone, Debug)]
pub struct MemlogdPaths {
    /// Write side (register streams).
    pub log_socket: std::path::PathBuf,
    /// Query side.
    pub query_socket: std::path::PathBuf,
}

/// Where the controller link is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Registering (or waiting to retry it).
    Onboarding,
    /// The last request got an answer.
    Connected,
    /// The last request failed after an earlier success.
    Unreachable,
    /// The link gave up (a bundle or identity problem; see the error).
    Stopped,
}

impl LinkState {
    /// Lower-case name (`outpost status`, the JSON API).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Onboarding => "onboarding",
            LinkState::Connected => "connected",
            LinkState::Unreachable => "unreachable",
            LinkState::Stopped => "stopped",
        }
    }
}

/// The controller link as its tasks report it.
#[derive(Clone, Debug)]
pub struct LinkView {
    /// `HOST:PORT` of the controller.
    pub server: String,
    /// Device UUID, once registered.
    pub uuid: Option<String>,
    /// Device name, once registered.
    pub name: Option<String>,
    /// Where the link is.
    pub state: LinkState,
    /// Last answer from the controller.
    pub last_contact: Option<Instant>,
    /// Last failure.
    pub last_error: Option<String>,
    /// The log upload queue (its own bounded counters).
    pub queue: Option<Arc<LogQueue>>,
    /// The device certificate and its renewals.
    pub cert: CertView,
}

impl LinkView {
    /// A link to `server` that is registering.
    pub fn onboarding(server: String) -> Self {
        LinkView {
            server,
            uuid: None,
            name: None,
            state: LinkState::Onboarding,
            last_contact: None,
            last_error: None,
            queue: None,
            cert: CertView::default(),
        }
    }

    /// What the admin API shows.
    pub fn view(&self) -> ControllerView {
        let q = self.queue.as_ref().map(|q| q.stats()).unwrap_or_default();
        ControllerView {
            server: self.server.clone(),
            uuid: self.uuid.clone(),
            name: self.name.clone(),
            state: self.state.as_str().to_owned(),
            last_contact_secs_ago: self.last_contact.map(|t| t.elapsed().as_secs()),
            last_error: self.last_error.clone(),
            log_batches_queued: q.batches,
            log_batches_dropped: q.dropped_batches,
            log_lines_dropped: q.dropped_lines,
            cert: self.cert.clone(),
        }
    }
}

/// The loop's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Config documents evaluated since start (accepted or refused, from any
    /// source; the checkpoint loaded at start counts as one).
    pub configs_evaluated: u64,
    /// `configs_evaluated` at the start of the last pass that planned
    /// nothing (`None`: no such pass yet). Tests and operators wait on it
    /// ("evaluated N documents, then found nothing to do").
    pub idle_through: Option<u64>,
    /// Task events dropped because the loop was behind.
    pub events_dropped: u64,
    /// User containerd restarts.
    pub instance_restarts: u32,
    /// Downloads refused because the download table was full.
    pub downloads_refused: u64,
}

/// One immutable view of the device, published by the loop after every
/// change.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The config in effect.
    pub current: Option<Arc<Current>>,
    /// Status of every known app, by UUID (DOWNLOADING with bytes applied).
    pub statuses: Arc<BTreeMap<String, AppStatus>>,
    /// Why the last config document was refused (cleared by the next
    /// accepted one).
    pub config_error: Option<String>,
    /// The controller link, when one is configured.
    pub link: Option<LinkView>,
    /// Counters.
    pub counters: Counters,
    /// When the agent started.
    pub started: Instant,
}

impl Snapshot {
    /// The snapshot before the first pass.
    pub fn initial(current: Option<Current>, started: Instant) -> Self {
        Snapshot {
            counters: Counters {
                configs_evaluated: u64::from(current.is_some()),
                ..Counters::default()
            },
            current: current.map(Arc::new),
            statuses: Arc::default(),
            config_error: None,
            link: None,
            started,
        }
    }

    /// All statuses, by display name.
    pub fn statuses(&self) -> Vec<AppStatus> {
        let mut v: Vec<AppStatus> = self.statuses.values().cloned().collect();
        v.sort_by(|a, b| a.display_name.cmp(&b.display_name));
        v
    }

    /// An app by display name, UUID, task ID, or unique UUID prefix.
    pub fn find(&self, key: &str) -> Option<AppStatus> {
        let all = &self.statuses;
        if let Some(s) = all
            .values()
            .find(|s| s.display_name == key || s.uuid == key)
        {
            return Some(s.clone());
        }
        if let Some(s) = all
            .values()
            .find(|s| s.domain.as_ref().is_some_and(|d| d.task_id == key))
        {
            return Some(s.clone());
        }
        let by_prefix: Vec<&AppStatus> = all
            .values()
            .filter(|s| key.len() >= 4 && s.uuid.starts_with(key))
            .collect();
        (by_prefix.len() == 1).then(|| by_prefix[0].clone())
    }

    /// Known names closest to `key` (for "did you mean").
    pub fn suggest(&self, key: &str) -> Vec<String> {
        let key = key.to_lowercase();
        let mut scored: Vec<(usize, String)> = self
            .statuses
            .values()
            .map(|s| {
                let d = strsim::levenshtein(&key, &s.display_name.to_lowercase());
                (d, s.display_name.clone())
            })
            .filter(|(d, n)| *d <= (n.len() / 2).max(2) || n.to_lowercase().contains(&key))
            .collect();
        scored.sort();
        scored.into_iter().take(3).map(|(_, n)| n).collect()
    }

    /// Network instances of the config in effect with the apps on them.
    pub fn networks(&self) -> Vec<NetworkView> {
        let Some(cur) = &self.current else {
            return Vec::new();
        };
        cur.config
            .networks
            .iter()
            .map(|n| {
                let prefix = format!("{}=", n.uuid);
                let apps = cur
                    .config
                    .apps
                    .iter()
                    .filter(|a| a.interfaces.iter().any(|i| i.network == n.uuid))
                    .map(|a| {
                        let ip = self
                            .statuses
                            .get(&a.uuid)
                            .and_then(|s| s.domain.as_ref())
                            .and_then(|d| {
                                d.ips
                                    .iter()
                                    .find_map(|i| i.strip_prefix(&prefix).map(str::to_owned))
                            });
                        format!("{}={}", a.display_name, ip.unwrap_or_else(|| "-".into()))
                    })
                    .collect();
                NetworkView {
                    uuid: n.uuid.clone(),
                    name: n.name.clone(),
                    kind: format!("{:?}", n.kind).to_lowercase(),
                    subnet: n.subnet.to_string(),
                    device: match n.kind {
                        outpost_api::NetworkKind::Switch => {
                            n.host_interface.clone().unwrap_or_default()
                        }
                        _ => outpost_runtime::net::conflist::bridge_name(n),
                    },
                    apps,
                }
            })
            .collect()
    }

    /// The admin API's `info`.
    pub fn info(&self) -> Info {
        let cur = self.current.as_deref();
        Info {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_generation: cur.map(|c| c.config.generation),
            config_source: cur.map(|c| c.origin.clone()),
            uptime_secs: self.started.elapsed().as_secs(),
            user_containerd_restarts: self.counters.instance_restarts,
            events_dropped: self.counters.events_dropped,
            downloads_refused: self.counters.downloads_refused,
            config_error: self.config_error.clone(),
            configs_evaluated: self.counters.configs_evaluated,
            idle_through: self.counters.idle_through,
            controller: self.link.as_ref().map(LinkView::view),
            // Read from the slot files by the admin API (not loop state).
            base_os: None,
        }
    }
}

/// An operator's command, answered by the loop.
#[derive(Debug)]
pub enum Command {
    /// Bump app `uuid`'s local restart or purge counter; the answer is the
    /// new value.
    Bump {
        /// The app.
        uuid: String,
        /// Which counter.
        kind: CounterKind,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// Override app `uuid`'s `activate` locally (`outpost stop|start`)
    /// until the next config generation.
    Activate {
        /// The app.
        uuid: String,
        /// The wanted value.
        activate: bool,
        /// Where the answer goes (the config generation it holds for).
        reply: oneshot::Sender<Result<u64, String>>,
    },
    /// Freeze (`pause: true`) or thaw app `uuid`'s task; the answer is the
    /// task ID.
    Pause {
        /// The app.
        uuid: String,
        /// Pause or resume.
        pause: bool,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// What the loop is told by the other tasks.
#[derive(Debug)]
pub enum Event {
    /// An operator command.
    Command(Command),
    /// A config document was refused before it could be parsed (bad
    /// signature, another device's config, a bad bootstrap config).
    Refused(String),
    /// The user containerd came (back) up.
    InstanceUp,
}

/// Capacity of the loop's event channel.
pub const EVENT_QUEUE: usize = 64;

/// What the admin API, the link and the checks hold: the published
/// snapshot, the loop's event channel, and read-only handles for I/O the
/// loop does not own (exec, metrics, memlogd queries).
#[derive(Clone)]
pub struct Handle {
    /// The loop's latest snapshot.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Events into the loop.
    pub events: mpsc::Sender<Event>,
    /// Device paths.
    pub layout: Layout,
    /// The user containerd (exec, metrics, version).
    pub runtime: Runtime,
    /// memlogd sockets.
    pub memlogd: MemlogdPaths,
    /// The state database (read-only checks; the loop writes).
    pub store: Arc<Store>,
    /// The controller link's state (written by the link's tasks).
    pub link: Arc<watch::Sender<Option<LinkView>>>,
    /// The device services' supervisor (its own view and commands).
    pub services: crate::daemon::services::Handle,
}

impl Handle {
    /// The latest snapshot.
    pub fn now(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Sends `event` to the loop. The loop drains its events even while a
    /// pass runs, so a full queue only makes the sender wait briefly;
    /// nothing is dropped. Fails only when the loop has stopped.
    pub async fn tell(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Updates the controller link's state.
    pub fn update_link(&self, f: impl FnOnce(&mut LinkView)) {
        self.link.send_if_modified(|l| match l.as_mut() {
            Some(l) => {
                f(l);
                true
            }
            None => false,
        });
    }
}
