//! Outpost's persistent decisions in one redb file: the source of truth for
//! *what was decided* (containerd is the source of truth for what exists).
//!
//! * Config checkpoints (EVE `lastconfig` / `lastconfig.bak`):
//!   [`Store::save_applied_config`], [`Store::promote_known_good`].
//! * Per-app records of the planner, stored as opaque JSON so this crate does
//!   not depend on it: [`Store::put_app_record`], [`Store::app_records`].
//! * Local operator counters, upgrade-converter handlers that ran.
//! * One decision = one write transaction: [`Batch`] + [`Store::commit`]. Every
//!   commit is durable when it returns (redb `Durability::Immediate`), and a
//!   `kill -9` at any moment leaves exactly the last committed batch (tested
//!   in `tests/crash_safety.rs`).
//! * A schema version with forward migrations and a one-step backward hook
//!   ([`schema`]); a file from a newer binary is refused, never downgraded.
//!   Version 2 dropped schema 1's `active_apps` and `applied_purge_counters`,
//!   which duplicated the records ([`schema::DROP_DEAD_TABLES`] /
//!   [`schema::RECREATE_DEAD_TABLES`]); a kill during either step leaves the
//!   file whole at version 1 or 2 (`tests/migration_crash.rs`).
//! * Bounds: config documents ≤ [`MAX_CONFIG_BYTES`] (16 MiB), app records ≤
//!   [`MAX_APP_RECORD_BYTES`] (1 MiB of JSON), keys ≤ [`MAX_KEY_BYTES`];
//!   checked before a transaction starts, so a refused batch writes nothing.
//! * A new file is built as `<path>.creating` and renamed into place: redb
//!   alone leaves an unopenable file when killed while creating one (its magic
//!   number is written last), which on a device means a first boot that never
//!   recovers. Also covered by `tests/crash_safety.rs`.
//!
//! Differences from EVE: EVE keeps these as separate files and marker files
//! under `/persist/status` and `/persist/checkpoint`; here they are tables of
//! one transactional file, so a decision cannot be half-written.
//!
//! # Current limitations
//! * The backward step 2 → 1 reads two fields of the planner's records
//!   (`was_active`, `applied.purge_counter`) by name: renaming them in the
//!   planner needs a schema migration. A schema-1 file whose markers
//!   disagree with its records loses the markers (logged): the planner only
//!   ever decided from the records.
//! * The number of app records and local counters is not bounded here; it
//!   follows the number of apps the agent writes (one per app in the config).
//!   Local counters may be bumped for any UUID; the caller resolves names.
//! * The file is never compacted; redb reuses freed pages, so its size tracks
//!   the largest state held, not the number of writes.
//! * [`Store::app_records`] fails whole if one record no longer decodes as the
//!   requested type; the planner's record type must stay backward-compatible
//!   (`#[serde(default)]` on new fields) or ship a schema migration.
//! * Durability against power loss is redb's (1-phase commit with checksums,
//!   fsync per commit); only process kills are tested here.
//! * One process at a time: a second [`Store::open`] of the same file fails
//!   (redb's file lock). Two processes creating the same new store at once
//!   are not coordinated beyond that.
//! * A file that is not a redb database ([`StoreError::NotAStore`]) is refused
//!   and left in place; moving it aside is the operator's (or agent's) call.

mod apps;
mod batch;
mod checkpoint;
mod counters;
mod create;
mod error;
mod handlers;
mod limits;
mod migration_v2;
pub mod schema;
mod store;
mod tables;

pub use batch::Batch;
pub use checkpoint::Checkpoint;
pub use counters::CounterKind;
pub use error::{MigrationError, Result, StoreError};
pub use limits::{MAX_APP_RECORD_BYTES, MAX_CONFIG_BYTES, MAX_KEY_BYTES};
pub use schema::{Migration, MigrationFn, Schema, BASE_VERSION, SCHEMA_VERSION};
pub use store::Store;

/// The redb this crate is built with, for migration functions.
pub use redb;
