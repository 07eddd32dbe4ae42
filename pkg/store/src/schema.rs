//! Schema version and migrations.
//!
//! The file records its schema version in the `schema` table. [`Store::open`]
//! brings an older file forward by running [`Migration`]s in order, all in the
//! same write transaction as the version bump, so a crash mid-migration
//! leaves the old version intact. A new file is created at [`BASE_VERSION`]
//! (the tables of `tables.rs`) and then runs the same migrations, so a new
//! file and an upgraded one end up identical. A file with a *newer* version
//! is refused ([`StoreError::SchemaTooNew`]); it is never downgraded silently.
//!
//! Rollback follows Bottlerocket's model: the binary that introduced version
//! N carries the backward step N → N-1 ([`Schema::backward`]), and runs it
//! ([`Store::roll_back_schema`]) before the older binary is booted.
//!
//! [`Store::open`]: crate::Store::open
//! [`Store::roll_back_schema`]: crate::Store::roll_back_schema

use std::path::Path;

use redb::{Database, ReadableTable, TableHandle, WriteTransaction};

use crate::error::{redb_error, MigrationError, Result, StoreError};
use crate::migration_v2;
use crate::tables;

/// Schema version written by this binary.
pub const SCHEMA_VERSION: u32 = 2;

/// Version of a newly created file, before any migration: the tables of `tables.rs`.
pub const BASE_VERSION: u32 = 1;

/// A migration step: changes the tables of one version into the next, inside
/// the caller's write transaction (which also records the new version).
pub type MigrationFn = fn(&WriteTransaction) -> Result<(), MigrationError>;

/// One step between two schema versions.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Name shown in logs and errors.
    pub name: &'static str,
    /// Version the step starts from.
    pub from: u32,
    /// Version the step produces.
    pub to: u32,
    /// The step itself.
    pub run: MigrationFn,
}

/// What a binary knows about the persisted format.
#[derive(Clone, Copy, Debug)]
pub struct Schema {
    /// Version this binary writes.
    pub version: u32,
    /// Forward steps, in any order: the one starting at the file's version
    /// runs next. Together they lead from every older supported version to
    /// `version`.
    pub forward: &'static [Migration],
    /// The one backward step `version` → `version - 1`, if this version can be
    /// rolled back (Bottlerocket: every format change ships one).
    pub backward: Option<Migration>,
}

/// 1 → 2: drops `active_apps` and `applied_purge_counters`, which only
/// duplicated the app records (`was_active`, `applied.purge_counter`).
/// Public so that the schema of a later version can chain it.
pub const DROP_DEAD_TABLES: Migration = Migration {
    name: "drop_dead_tables",
    from: 1,
    to: 2,
    run: migration_v2::drop_dead_tables,
};

/// 2 → 1: rebuilds `active_apps` and `applied_purge_counters` from the app
/// records, so a schema-1 agent runs on the file.
pub const RECREATE_DEAD_TABLES: Migration = Migration {
    name: "recreate_dead_tables",
    from: 2,
    to: 1,
    run: migration_v2::recreate_dead_tables,
};

/// The schema of this binary.
pub const CURRENT: Schema = Schema {
    version: SCHEMA_VERSION,
    forward: &[DROP_DEAD_TABLES],
    backward: Some(RECREATE_DEAD_TABLES),
};

/// Reads the recorded version; `None` for a file with no tables at all.
fn recorded_version(path: &Path, txn: &WriteTransaction) -> Result<Option<u32>> {
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| redb_error(path, "listing tables".into(), e))?
        .map(|t| t.name().to_string())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let version = if names.iter().any(|n| n == tables::SCHEMA.name()) {
        let table = txn
            .open_table(tables::SCHEMA)
            .map_err(|e| redb_error(path, "opening table schema".into(), e))?;
        let guard = table
            .get(tables::SCHEMA_KEY)
            .map_err(|e| redb_error(path, "reading table schema, key \"version\"".into(), e))?;
        guard.map(|g| g.value())
    } else {
        None
    };
    version.map(Some).ok_or_else(|| StoreError::Unversioned {
        path: path.to_path_buf(),
        tables: names.join(", "),
    })
}

fn write_version(path: &Path, txn: &WriteTransaction, version: u32) -> Result<()> {
    let mut table = txn
        .open_table(tables::SCHEMA)
        .map_err(|e| redb_error(path, "opening table schema".into(), e))?;
    table
        .insert(tables::SCHEMA_KEY, version)
        .map_err(|e| redb_error(path, "writing table schema, key \"version\"".into(), e))?;
    Ok(())
}

fn run_step(path: &Path, txn: &WriteTransaction, m: &Migration) -> Result<()> {
    (m.run)(txn).map_err(|source| StoreError::Migration {
        path: path.to_path_buf(),
        name: m.name,
        from: m.from,
        to: m.to,
        source,
    })?;
    write_version(path, txn, m.to)
}

/// Brings the file to `schema.version` (creating it at [`BASE_VERSION`] when
/// empty) in one write transaction; returns the version it found (`None`: new file).
pub(crate) fn upgrade(db: &Database, path: &Path, schema: &Schema) -> Result<Option<u32>> {
    let txn = db
        .begin_write()
        .map_err(|e| redb_error(path, "starting the schema transaction".into(), e))?;
    let found = recorded_version(path, &txn)?;
    let mut version = match found {
        None => {
            tables::create_all(&txn).map_err(|e| redb_error(path, "creating tables".into(), e))?;
            write_version(path, &txn, BASE_VERSION)?;
            BASE_VERSION
        }
        Some(v) if v > schema.version => {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found: v,
                supported: schema.version,
            })
        }
        Some(v) => v,
    };
    while version < schema.version {
        let step = schema
            .forward
            .iter()
            .find(|m| m.from == version && m.to > version && m.to <= schema.version)
            .ok_or_else(|| StoreError::MissingMigration {
                path: path.to_path_buf(),
                from: version,
                target: schema.version,
            })?;
        run_step(path, &txn, step)?;
        tracing::info!(store = %path.display(), migration = step.name, from = step.from, to = step.to, "store schema migrated");
        version = step.to;
    }
    if found == Some(version) {
        // up to date: nothing written, no fsync at every open
        txn.abort()
            .map_err(|e| redb_error(path, "closing the schema transaction".into(), e))?;
    } else {
        txn.commit()
            .map_err(|e| redb_error(path, "committing the schema transaction".into(), e))?;
    }
    Ok(found)
}

/// Runs `schema.backward` on a file at `schema.version`; returns the new version.
pub(crate) fn roll_back(db: &Database, path: &Path, schema: &Schema) -> Result<u32> {
    let refuse = |reason: String| StoreError::Rollback {
        path: path.to_path_buf(),
        reason,
    };
    let step = schema.backward.ok_or_else(|| {
        refuse(format!(
            "schema version {} has no backward migration",
            schema.version
        ))
    })?;
    if step.from != schema.version || step.to >= step.from {
        return Err(refuse(format!(
            "backward migration {} goes from {} to {}, expected {} to a lower version",
            step.name, step.from, step.to, schema.version
        )));
    }
    let txn = db
        .begin_write()
        .map_err(|e| redb_error(path, "starting the rollback transaction".into(), e))?;
    match recorded_version(path, &txn)? {
        Some(v) if v == step.from => {}
        Some(v) => {
            return Err(refuse(format!(
                "file is at schema version {v}, the backward migration {} starts at {}",
                step.name, step.from
            )))
        }
        None => return Err(refuse("the file is empty".into())),
    }
    run_step(path, &txn, &step)?;
    txn.commit()
        .map_err(|e| redb_error(path, "committing the rollback transaction".into(), e))?;
    tracing::info!(store = %path.display(), migration = step.name, from = step.from, to = step.to, "store schema rolled back");
    Ok(step.to)
}
