//! The controller's storage, behind one narrow trait with two
//! implementations: the embedded redb file ([`crate::db::Db`], the default:
//! one `serve` owns it) and PostgreSQL ([`pg::PgStore`], `serve --database
//! postgres://…`: any number of `serve` replicas share it).
//!
//! The trait is synchronous: the state layer calls it on tokio's blocking
//! pool ([`crate::state::Controller`]'s `blocking`), which redb needs
//! anyway; the PostgreSQL implementation drives its async driver there with
//! the runtime handle it was opened on.

pub mod pg;
mod redb_impl;

use std::collections::HashMap;

use outpost_api::cloud::LogEntry;

use crate::db::{
    AddOutcome, BaseOsRecord, ConfigRecord, DeviceRecord, InfoRecord, LogAppend, LogLine,
    MetricsSample, Presence, RegisterOutcome, RenewOutcome, RingMeta, Settings,
};
use crate::error::Result;
use crate::pki::Issued;

/// Builds the config record of a device for a generation (signing it).
pub type MakeConfig<'a> = &'a mut dyn FnMut(&str, u64) -> Result<ConfigRecord>;
/// Issues a certificate for a device UUID.
pub type IssueCert<'a> = &'a mut dyn FnMut(&str) -> Result<Issued>;

/// What the state layer needs from storage. Every method is one
/// transaction; none may be called from an async task (use the blocking pool).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Settings written by `init`.
    fn settings(&self) -> Result<Settings>;
    /// Whether other processes write to this store too (then changes are
    /// announced and a replica follows them: `state::follow`).
    fn shared(&self) -> bool;

    /// Every device, in no particular order.
    fn devices(&self) -> Result<Vec<DeviceRecord>>;
    /// The devices among `uuids` that exist.
    fn devices_of(&self, uuids: &[String]) -> Result<Vec<DeviceRecord>>;
    /// Puts `record` on the onboarding list unless its serial or name is taken.
    fn add_device(&self, record: DeviceRecord) -> Result<AddOutcome>;
    /// Registers `serial` with `public_key`, issuing the certificate with
    /// `issue(uuid)` inside the same transaction.
    fn register(
        &self,
        serial: &str,
        public_key: &str,
        open_onboarding: bool,
        issue: IssueCert<'_>,
    ) -> Result<RegisterOutcome>;
    /// Removes a device and everything stored for it; `None` if unknown.
    fn delete_device(&self, uuid: &str) -> Result<Option<DeviceRecord>>;
    /// Issues (with `issue(uuid)`) and records a new certificate of device
    /// `uuid` for `public_key` (its key, or a new one that replaces it).
    fn renew_cert(
        &self,
        uuid: &str,
        public_key: &str,
        issue: IssueCert<'_>,
    ) -> Result<RenewOutcome>;
    /// Marks device `uuid` revoked at `at` (RFC 3339); `None` if unknown.
    fn revoke_device(&self, uuid: &str, at: &str) -> Result<Option<DeviceRecord>>;

    /// Every stored config, by device UUID.
    fn configs(&self) -> Result<Vec<(String, ConfigRecord)>>;
    /// The configs of the devices among `uuids` that have one.
    fn configs_of(&self, uuids: &[String]) -> Result<Vec<(String, ConfigRecord)>>;
    /// Device UUID → generation of its stored config (the catch-up query).
    fn config_generations(&self) -> Result<HashMap<String, u64>>;
    /// The config set for `uuid`.
    fn config(&self, uuid: &str) -> Result<Option<ConfigRecord>>;
    /// Stores the config `make(uuid, generation)` builds for each existing
    /// device of `uuids`, in one transaction; the generation is one more
    /// than the higher of the last one set and the one the device reported
    /// in effect. An error from `make` writes nothing.
    fn set_configs(
        &self,
        uuids: &[String],
        make: MakeConfig<'_>,
    ) -> Result<Vec<(String, ConfigRecord)>>;

    /// Replaces the device's last info; `false` if the device is gone.
    fn put_info(&self, uuid: &str, record: &InfoRecord) -> Result<bool>;
    /// The device's last info.
    fn info(&self, uuid: &str) -> Result<Option<InfoRecord>>;
    /// Every device's last info, by UUID.
    fn infos(&self) -> Result<HashMap<String, InfoRecord>>;
    /// Appends a metrics sample, keeping the last `keep`; `false` if the device is gone.
    fn push_metrics(&self, uuid: &str, sample: &MetricsSample, keep: u64) -> Result<bool>;
    /// The device's last `n` metrics samples, oldest first.
    fn metrics(&self, uuid: &str, n: usize) -> Result<Vec<MetricsSample>>;

    /// Stores log batch `batch` (JSON lines) unless a batch numbered at or
    /// above it is held, keeping the last `keep` lines; `None`: device gone.
    fn append_logs(
        &self,
        uuid: &str,
        batch: u64,
        lines: &[Vec<u8>],
        keep: u64,
    ) -> Result<Option<LogAppend>>;
    /// Ring bookkeeping of the device's logs.
    fn log_meta(&self, uuid: &str) -> Result<RingMeta>;
    /// Up to `limit` lines after `after` that pass `filter`, oldest first,
    /// and the last sequence number looked at.
    fn logs_after(
        &self,
        uuid: &str,
        after: Option<u64>,
        limit: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<(Vec<LogLine>, Option<u64>)>;
    /// The last `n` lines that pass `filter`, oldest first.
    fn logs_tail(
        &self,
        uuid: &str,
        n: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<Vec<LogLine>>;

    /// Every device's stored presence (last seen, last long-poll held).
    fn presence(&self) -> Result<HashMap<String, Presence>>;
    /// One device's stored presence.
    fn presence_of(&self, uuid: &str) -> Result<Option<Presence>>;
    /// Records presence in one transaction, keeping the later time of each
    /// field; devices that no longer exist are skipped.
    fn record_presence(&self, rows: &[(String, Presence)]) -> Result<()>;

    /// Every published base OS artifact, in no particular order.
    fn base_os_artifacts(&self) -> Result<Vec<BaseOsRecord>>;
    /// Stores (or replaces) an artifact's record.
    fn put_base_os(&self, record: &BaseOsRecord) -> Result<()>;
    /// Removes an artifact's record; `false` if there was none.
    fn delete_base_os(&self, sha256: &str) -> Result<bool>;
}

/// `set_config` of one device through [`Store::set_configs`]; `None`: no such device.
pub fn set_config(
    store: &dyn Store,
    uuid: &str,
    make: MakeConfig<'_>,
) -> Result<Option<ConfigRecord>> {
    let mut out = store.set_configs(&[uuid.to_owned()], make)?;
    Ok(out.pop().map(|(_, r)| r))
}
