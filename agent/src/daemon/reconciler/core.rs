//! The loop's state: what it listens to and what it owns. The passes
//! (`reconciler.rs`), the status publication (`status.rs`), the saving of
//! decisions (`persist.rs`), networks and housekeeping are `impl` blocks on
//! [`Reconciler`] in files of their own, each depending on this one only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use outpost_api::{AppStatus, NetworkConfig};
use outpost_reconcile::{HealthTracker, History};
use outpost_runtime::events::EventStream;
use outpost_store::Store;
use tokio::sync::{mpsc, watch};

use super::options::{Clock, LoopOptions};
use crate::daemon::driver::Driver;
use crate::daemon::executor::Executor;
use crate::daemon::snapshot::{Counters, Current, Event, LinkView, Snapshot};
use crate::daemon::source::ParsedConfig;

/// What the loop listens to.
pub struct Inputs {
    /// Parsed config documents from every source.
    pub configs: mpsc::Receiver<ParsedConfig>,
    /// Commands and notices from the admin API and the link.
    pub events: mpsc::Receiver<Event>,
    /// Task events of the user containerd (none in table tests).
    pub tasks: Option<EventStream>,
    /// The controller link's state.
    pub link: watch::Receiver<Option<LinkView>>,
}

/// The reconcile loop; returns when `stop` fires.
pub struct Reconciler<D: Driver> {
    pub(super) exec: Executor<D>,
    pub(super) store: Arc<Store>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) opts: LoopOptions,
    pub(super) history: History,
    pub(super) health: HealthTracker,
    pub(super) vnc_by_image: HashMap<String, bool>,
    pub(super) last_gc_ms: Option<u64>,
    /// Network instances set up by this process, as configured then
    /// (checked again only when the config or the host side changes).
    pub(super) ensured_networks: HashMap<String, NetworkConfig>,
    /// Apps whose latest record could not be saved (see `persist`).
    pub(super) unsaved: BTreeMap<String, Unsaved>,
    /// The config in effect.
    pub(super) current: Option<Arc<Current>>,
    /// Statuses as planned (before the download overlay).
    pub(super) statuses: BTreeMap<String, AppStatus>,
    pub(super) config_error: Option<String>,
    pub(super) link: Option<LinkView>,
    pub(super) counters: Counters,
    pub(super) started: Instant,
    /// The statuses last published (kept when unchanged, so readers can tell
    /// a change by pointer).
    pub(super) published: Arc<BTreeMap<String, AppStatus>>,
    pub(super) snapshot: watch::Sender<Arc<Snapshot>>,
    /// Something arrived during a pass: pass again before sleeping.
    pub(super) dirty: bool,
}

impl<D: Driver> Reconciler<D> {
    /// A loop over `exec`'s driver, loading the history from `store`, starting
    /// from `initial` (the checkpoint) and publishing on `snapshot`.
    pub fn new(
        exec: Executor<D>,
        store: Arc<Store>,
        opts: LoopOptions,
        clock: Arc<dyn Clock>,
        snapshot: watch::Sender<Arc<Snapshot>>,
    ) -> anyhow::Result<Self> {
        let apps = store.app_records()?;
        let initial = snapshot.borrow().clone();
        Ok(Reconciler {
            exec,
            store,
            clock,
            opts,
            history: History { apps },
            health: HealthTracker::default(),
            vnc_by_image: HashMap::new(),
            last_gc_ms: None,
            ensured_networks: HashMap::new(),
            unsaved: BTreeMap::new(),
            current: initial.current.clone(),
            statuses: BTreeMap::new(),
            config_error: None,
            link: initial.link.clone(),
            counters: initial.counters,
            started: initial.started,
            published: Arc::default(),
            snapshot,
            dirty: false,
        })
    }
}

/// An app whose latest record could not be saved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::daemon::reconciler) struct Unsaved {
    /// The store's error, as text.
    pub error: String,
    /// When saving first failed (ms since the epoch).
    pub first_ms: u64,
    /// When it last failed.
    pub last_ms: u64,
    /// Failed attempts in a row.
    pub failures: u32,
}
