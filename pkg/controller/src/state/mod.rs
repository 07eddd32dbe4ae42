//! The running controller: the database plus what must be fast in memory
//! (devices by certificate fingerprint, each device's current signed config
//! and its watchers). Every change goes to the store first, then to memory.
//! With a shared store (PostgreSQL) the memory is a cache that
//! [`follow`](Controller::follow) keeps up with the other replicas' changes.

mod configs;
mod devices;
mod follow;
mod presence;
mod signing_files;
mod uploads;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::certs::signing::Signing;
use crate::db::{Db, DeviceRecord};
use crate::error::Result;
use crate::layout::{self, StateDir};
use crate::limits::{Limits, Stats};
use crate::pki::{self, Ca};
use crate::reply::Failure;
use crate::store::pg::PgStore;
use crate::store::Store;

pub(crate) use configs::make_record;
pub use configs::{ConfigSet, CurrentConfig};
pub use devices::Registered;
pub use presence::{connected_by, PRESENCE_EVERY};
pub use signing_files::SIGNING_CHECK_EVERY;
pub use uploads::decode_log_batch;

/// One device in memory.
#[derive(Debug)]
pub struct DeviceSlot {
    record: Mutex<DeviceRecord>,
    /// The current signed config (`None`: none set yet); long-polls watch it.
    pub config: watch::Sender<Option<Arc<CurrentConfig>>>,
    /// Sequence number of the newest stored log line + 1; `logs -f` watches it.
    pub logs: watch::Sender<u64>,
    /// Unix seconds of the last authenticated request (0: never).
    last_seen: AtomicI64,
    /// The `last_seen` last written to the store (`presence`).
    flushed_seen: AtomicI64,
    /// Set when the device is deleted (its watchers are woken to see it).
    deleted: AtomicBool,
    /// Config long-polls of this device waiting now.
    pub polls_waiting: AtomicU64,
}

impl DeviceSlot {
    fn new(record: DeviceRecord) -> Self {
        DeviceSlot {
            record: Mutex::new(record),
            config: watch::Sender::new(None),
            logs: watch::Sender::new(0),
            last_seen: AtomicI64::new(0),
            flushed_seen: AtomicI64::new(0),
            deleted: AtomicBool::new(false),
            polls_waiting: AtomicU64::new(0),
        }
    }

    /// Whether the device was deleted (a watcher holding the slot checks it
    /// after every wake-up).
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Relaxed)
    }

    /// Whether an operator revoked the device (checked on every request
    /// and after every wake-up of a long-poll).
    pub fn is_revoked(&self) -> bool {
        self.record.lock().unwrap().revoked_at.is_some()
    }

    /// A copy of the record.
    pub fn record(&self) -> DeviceRecord {
        self.record.lock().unwrap().clone()
    }

    /// The device UUID.
    pub fn uuid(&self) -> String {
        self.record.lock().unwrap().uuid.clone()
    }

    /// Marks the device as seen now.
    pub fn touch(&self) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.last_seen.store(now, Ordering::Relaxed);
    }

    /// Whether the device has a config long-poll waiting (it is connected now).
    pub fn connected(&self) -> bool {
        self.polls_waiting.load(Ordering::Relaxed) > 0
    }

    /// When the device last called (this process's lifetime only).
    pub fn last_seen(&self) -> Option<time::OffsetDateTime> {
        match self.last_seen.load(Ordering::Relaxed) {
            0 => None,
            t => time::OffsetDateTime::from_unix_timestamp(t).ok(),
        }
    }
}

/// Who is calling, from the TLS client certificate.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No client certificate.
    Anonymous,
    /// The onboarding certificate.
    Onboarding,
    /// A device's certificate.
    Device(Arc<DeviceSlot>),
    /// A certificate from our CA that no current device holds (deleted
    /// device, replaced certificate).
    Unknown,
}

/// The running controller.
pub struct Controller {
    pub(crate) db: Box<dyn Store>,
    /// Connection settings and TLS of the shared database (PostgreSQL) to follow.
    follow: Option<(
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    )>,
    pub(crate) state: StateDir,
    pub(crate) ca: Ca,
    /// The signing key and the certificates served by fingerprint; replaced
    /// when the state dir's signing files change (`signing rotate`).
    signing: RwLock<Arc<Signing>>,
    onboarding_fingerprint: String,
    pub(crate) open_onboarding: bool,
    /// Bounds in force.
    pub limits: Limits,
    /// Counters.
    pub stats: Stats,
    devices: RwLock<HashMap<String, Arc<DeviceSlot>>>,
    by_fingerprint: RwLock<HashMap<String, String>>,
    /// Serialises registrations and operator changes (rare; uploads do not take it).
    pub(crate) ops: tokio::sync::Mutex<()>,
    /// Becomes `true` when the server shuts down (long-polls answer at once).
    pub(crate) shutdown: watch::Sender<bool>,
    /// Device certificate lifetime and the clock of validity decisions.
    pub certs: crate::certs::CertPolicy,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Opens the state directory: keys, certificates, database, and the
    /// devices and configs into memory. `open_onboarding` adds to the
    /// setting stored by `init`.
    pub fn open(state: StateDir, open_onboarding: bool, limits: Limits) -> Result<Controller> {
        Self::open_with(state, open_onboarding, limits, None, None)
    }

    /// [`Controller::open`] on the PostgreSQL database at `database`
    /// (`None`: the state dir's redb file), over TLS verified against
    /// `database_ca` when given. The settings still come from
    /// the state dir (`init`). Call it on the blocking pool of a runtime.
    pub fn open_with(
        state: StateDir,
        open_onboarding: bool,
        limits: Limits,
        database: Option<&str>,
        database_ca: Option<&std::path::Path>,
    ) -> Result<Controller> {
        state.require_initialised()?;
        let ca = Ca::load(&state)?;
        let signing = RwLock::new(Arc::new(Signing::load(&state)?));
        let onboarding_fingerprint = pki::cert_file_fingerprint(&state.file(layout::ONBOARD_CERT))?;
        let local = Db::open(&state.database())?;
        let (db, follow): (Box<dyn Store>, _) = match database {
            None => (Box::new(local), None),
            Some(url) => {
                let settings = local.settings()?;
                drop(local);
                let pg = tokio::runtime::Handle::current().block_on(PgStore::connect(
                    url,
                    database_ca,
                    settings,
                ))?;
                let follow = Some((pg.config().clone(), pg.tls()));
                (Box::new(pg), follow)
            }
        };
        let settings = db.settings()?;
        let me = Controller {
            follow,
            open_onboarding: open_onboarding || settings.open_onboarding,
            db,
            state,
            ca,
            signing,
            onboarding_fingerprint,
            limits,
            stats: Stats::default(),
            devices: RwLock::new(HashMap::new()),
            by_fingerprint: RwLock::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
            shutdown: watch::Sender::new(false),
            certs: crate::certs::CertPolicy::default(),
        };
        for record in me.db.devices()? {
            me.insert_slot(record);
        }
        for (uuid, config) in me.db.configs()? {
            if let Some(slot) = me.slot(&uuid) {
                slot.config
                    .send_replace(Some(Arc::new(CurrentConfig::from_record(&config))));
            }
        }
        Ok(me)
    }

    /// Uses `policy` for device certificates (lifetime, clock).
    pub fn with_cert_policy(mut self, policy: crate::certs::CertPolicy) -> Self {
        self.certs = policy;
        self
    }

    /// The state directory.
    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// Whether unknown serials may register.
    pub fn open_onboarding(&self) -> bool {
        self.open_onboarding
    }

    /// The signing key and certificates in use now.
    pub(crate) fn signing(&self) -> Arc<Signing> {
        self.signing.read().unwrap().clone()
    }

    /// The signing certificate, PEM.
    pub fn signing_cert_pem(&self) -> String {
        self.signing().signer.cert_pem().to_owned()
    }

    /// The signing certificate with this fingerprint, if current or inside
    /// its overlap (`GET /api/v1/certs/<fingerprint>`).
    pub fn signing_cert_by_fingerprint(&self, fp: &str) -> Option<String> {
        self.signing()
            .certs
            .get(fp, self.certs.now())
            .map(str::to_owned)
    }

    /// The store (read access for the admin API).
    pub fn db(&self) -> &dyn Store {
        &*self.db
    }

    /// The device with this UUID.
    pub fn slot(&self, uuid: &str) -> Option<Arc<DeviceSlot>> {
        self.devices.read().unwrap().get(uuid).cloned()
    }

    /// Every device.
    pub fn slots(&self) -> Vec<Arc<DeviceSlot>> {
        self.devices.read().unwrap().values().cloned().collect()
    }

    /// (UUID, name) of every device.
    pub fn device_names(&self) -> Vec<(String, String)> {
        self.slots()
            .iter()
            .map(|s| {
                let r = s.record();
                (r.uuid, r.name)
            })
            .collect()
    }

    /// Inserts or replaces a device in memory, keeping its watchers.
    pub(crate) fn insert_slot(&self, record: DeviceRecord) -> Arc<DeviceSlot> {
        let mut fps = self.by_fingerprint.write().unwrap();
        fps.retain(|_, uuid| uuid != &record.uuid);
        for fp in &record.cert_fingerprints {
            fps.insert(fp.clone(), record.uuid.clone());
        }
        let mut devices = self.devices.write().unwrap();
        match devices.get(&record.uuid) {
            Some(slot) => {
                let revoked_now = record.revoked_at.is_some() && !slot.is_revoked();
                *slot.record.lock().unwrap() = record;
                if revoked_now {
                    // wake its long-polls: they answer 403
                    slot.config.send_modify(|_| {});
                }
                slot.clone()
            }
            None => {
                let slot = Arc::new(DeviceSlot::new(record.clone()));
                devices.insert(record.uuid, slot.clone());
                slot
            }
        }
    }

    /// Removes a device from memory; its watchers see the channels close.
    pub(crate) fn remove_slot(&self, uuid: &str) {
        self.by_fingerprint
            .write()
            .unwrap()
            .retain(|_, u| u != uuid);
        let slot = self.devices.write().unwrap().remove(uuid);
        if let Some(slot) = slot {
            slot.deleted.store(true, Ordering::Relaxed);
            slot.config.send_modify(|_| {});
            slot.logs.send_modify(|_| {});
        }
    }

    /// Who holds the client certificate with this fingerprint.
    pub fn caller(&self, fingerprint: Option<&str>) -> Caller {
        let Some(fp) = fingerprint else {
            return Caller::Anonymous;
        };
        if fp == self.onboarding_fingerprint {
            return Caller::Onboarding;
        }
        let uuid = self.by_fingerprint.read().unwrap().get(fp).cloned();
        match uuid.and_then(|u| self.slot(&u)) {
            Some(slot) => Caller::Device(slot),
            None => Caller::Unknown,
        }
    }

    /// The device `uuid` if the caller is that device: 401 without a
    /// certificate or with one no device holds, 403 for another identity.
    pub fn authorize_device(
        &self,
        fingerprint: Option<&str>,
        uuid: &str,
    ) -> Result<Arc<DeviceSlot>, Failure> {
        match self.caller(fingerprint) {
            Caller::Anonymous => Err(Failure::unauthorized(
                "a device certificate is required (none was presented)",
            )),
            Caller::Unknown => Err(Failure::unauthorized(
                "the client certificate belongs to no current device (deleted, or replaced by a later registration)",
            )),
            Caller::Onboarding => Err(Failure::forbidden(
                "the onboarding certificate may only register",
            )),
            Caller::Device(slot) => {
                let own = slot.uuid();
                if own != uuid {
                    return Err(Failure::forbidden(format!(
                        "device {own} may not access device {uuid}"
                    )));
                }
                if slot.is_revoked() {
                    Stats::bump(&self.stats.revoked_refused);
                    return Err(revoked_failure(&slot));
                }
                slot.touch();
                Ok(slot)
            }
        }
    }

    /// Finds a device by UUID or name; 404 with suggestions otherwise.
    pub fn resolve(&self, key: &str) -> Result<Arc<DeviceSlot>, Failure> {
        if let Some(slot) = self.slot(key) {
            return Ok(slot);
        }
        let slots = self.slots();
        if let Some(slot) = slots.iter().find(|s| s.record.lock().unwrap().name == key) {
            return Ok(slot.clone());
        }
        let candidates: Vec<(String, String)> = slots
            .iter()
            .map(|s| {
                let r = s.record.lock().unwrap();
                (r.name.clone(), r.uuid.clone())
            })
            .collect();
        let mut suggestions =
            crate::names::suggest(key, candidates.iter().map(|(n, _)| n.as_str()));
        if key.len() >= 4 {
            suggestions.extend(
                candidates
                    .iter()
                    .filter(|(_, u)| u.starts_with(key))
                    .map(|(n, _)| n.clone()),
            );
        }
        suggestions.dedup();
        Err(Failure::not_found(
            format!("no device named {key:?}"),
            suggestions,
        ))
    }

    /// Runs a database operation on the blocking pool.
    pub(crate) async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Controller) -> Result<R> + Send + 'static,
    ) -> Result<R, Failure> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || f(&me)).await {
            Ok(r) => r.map_err(Failure::from),
            Err(e) => Err(Failure::internal(format!("database task: {e}"))),
        }
    }

    /// Counts a request refused because its device is revoked.
    pub fn count_revoked(&self) {
        Stats::bump(&self.stats.revoked_refused);
    }

    /// Tells long-polls and followers to answer now: the server is stopping.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The 403 of a revoked device.
pub fn revoked_failure(slot: &DeviceSlot) -> Failure {
    let r = slot.record();
    Failure::forbidden(format!(
        "device {} ({}) was revoked at {} by the operator; its certificates are no longer accepted",
        r.name,
        r.uuid,
        r.revoked_at.as_deref().unwrap_or("?")
    ))
}
