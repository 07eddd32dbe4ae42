//! The redb tables of the current schema (version 2) and the one place that
//! creates a new file's tables (at version 1, see [`create_all`]).
//!
//! | table | key | value |
//! |---|---|---|
//! | `schema` | `"version"` | `u32` |
//! | `config_checkpoints` | `"applied"`, `"known_good"` | `(generation, saved_ms, raw bytes)` |
//! | `app_records` | app UUID | JSON of the planner's record |
//! | `local_counters` | app UUID | `(restart, purge)` |
//! | `upgrade_handlers` | handler name | `u64` ms of the last run |
//!
//! Schema 1 also had `applied_purge_counters` and `active_apps`; version 2
//! dropped them. Their definitions stay here, for [`create_all`] and the
//! steps in `migration_v2.rs`.

use redb::{TableDefinition, TableError, WriteTransaction};

/// Schema version of the file.
pub(crate) const SCHEMA: TableDefinition<&str, u32> = TableDefinition::new("schema");
/// Key of the version in [`SCHEMA`].
pub(crate) const SCHEMA_KEY: &str = "version";

/// Applied and known-good config documents.
pub(crate) const CHECKPOINTS: TableDefinition<&str, (u64, u64, &[u8])> =
    TableDefinition::new("config_checkpoints");
/// Key of the last applied config (EVE `lastconfig`).
pub(crate) const APPLIED: &str = "applied";
/// Key of the known-good config (EVE `lastconfig.bak`).
pub(crate) const KNOWN_GOOD: &str = "known_good";

/// Per-app records, opaque JSON.
pub(crate) const APP_RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("app_records");
/// Operator counters per app: (restart, purge).
pub(crate) const LOCAL_COUNTERS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("local_counters");
/// Upgrade-converter handlers that ran, with the time of the last run.
pub(crate) const HANDLERS: TableDefinition<&str, u64> = TableDefinition::new("upgrade_handlers");

/// Schema 1: purge counter last applied per app (no longer kept).
pub(crate) const PURGE_COUNTERS: TableDefinition<&str, u64> =
    TableDefinition::new("applied_purge_counters");
/// Schema 1: apps that were running at the last decision (no longer kept).
pub(crate) const ACTIVE_APPS: TableDefinition<&str, ()> = TableDefinition::new("active_apps");

/// Creates the tables of [`BASE_VERSION`](crate::BASE_VERSION) (1): a new file
/// then runs the same forward migrations as an old one, so both end up identical.
pub(crate) fn create_all(txn: &WriteTransaction) -> Result<(), TableError> {
    txn.open_table(SCHEMA)?;
    txn.open_table(CHECKPOINTS)?;
    txn.open_table(APP_RECORDS)?;
    txn.open_table(PURGE_COUNTERS)?;
    txn.open_table(ACTIVE_APPS)?;
    txn.open_table(LOCAL_COUNTERS)?;
    txn.open_table(HANDLERS)?;
    Ok(())
}
