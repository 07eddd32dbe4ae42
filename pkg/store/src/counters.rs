//! Local operator counters: `outpost restart <app>` and `outpost purge <app>`
//! bump a per-app counter, like EVE's local commands; the planner treats a
//! change like a controller counter change.

use redb::ReadableTable;

use crate::error::{Result, StoreError};
use crate::limits::check_key;
use crate::store::Store;
use crate::tables;

/// Which local counter to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// Restart the app.
    Restart,
    /// Purge the app's volumes and restart it.
    Purge,
}

impl CounterKind {
    fn name(self) -> &'static str {
        match self {
            CounterKind::Restart => "local restart counter",
            CounterKind::Purge => "local purge counter",
        }
    }
}

impl Store {
    /// Adds one to app `uuid`'s `kind` counter and returns the new value.
    pub fn bump_local_counter(&self, uuid: &str, kind: CounterKind) -> Result<u64> {
        check_key("app UUID", uuid)?;
        self.write("bumping a local counter", |txn| {
            let mut table = txn
                .open_table(tables::LOCAL_COUNTERS)
                .map_err(self.fail(|| "opening table local_counters"))?;
            let (restart, purge) = table
                .get(uuid)
                .map_err(self.fail(|| format!("reading table local_counters, key {uuid:?}")))?
                .map(|g| g.value())
                .unwrap_or((0, 0));
            let overflow = || StoreError::CounterOverflow {
                path: self.path().to_path_buf(),
                what: kind.name(),
                uuid: uuid.to_string(),
            };
            let next = match kind {
                CounterKind::Restart => (restart.checked_add(1).ok_or_else(overflow)?, purge),
                CounterKind::Purge => (restart, purge.checked_add(1).ok_or_else(overflow)?),
            };
            table
                .insert(uuid, next)
                .map_err(self.fail(|| format!("writing table local_counters, key {uuid:?}")))?;
            Ok(match kind {
                CounterKind::Restart => next.0,
                CounterKind::Purge => next.1,
            })
        })
    }

    /// App `uuid`'s local `(restart, purge)` counters; `(0, 0)` if never bumped.
    pub fn local_counters(&self, uuid: &str) -> Result<(u64, u64)> {
        self.read_table(tables::LOCAL_COUNTERS, |table| {
            let guard = table
                .get(uuid)
                .map_err(self.fail(|| format!("reading table local_counters, key {uuid:?}")))?;
            Ok(guard.map(|g| g.value()).unwrap_or((0, 0)))
        })
    }
}
