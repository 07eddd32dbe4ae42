//! The controller's redb file: devices, the onboarding list, configs and
//! what devices upload. One write transaction per change; records are JSON
//! so a field can be added without a migration (`#[serde(default)]`).
//!
//! redb is single-process: the running `serve` owns the file, and the admin
//! CLI goes through its socket.

mod baseos;
pub(crate) mod certs;
mod configs;
mod devices;
mod logs;
mod presence;
mod records;
mod tables;
mod uploads;

use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use baseos::BaseOsRecord;
pub use certs::RenewOutcome;
pub use devices::{AddOutcome, RegisterOutcome};
pub use logs::{LogAppend, LogLine, LOG_LINES_KEPT};
pub use presence::Presence;
pub use records::{ConfigRecord, DeviceRecord, InfoRecord, MetricsSample, RingMeta, Settings};
pub use uploads::METRICS_KEPT;

use crate::error::{ControllerError, Result};

/// Schema version written by `init`; a file with another one is refused.
pub const SCHEMA_VERSION: u64 = 1;

/// The open database.
pub struct Db {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Creates a new database at `path` (built as `<path>.creating` and
    /// renamed, so an interrupted `init` never leaves a half-made file).
    pub fn create(path: &Path, settings: &Settings) -> Result<Db> {
        let staging = path.with_extension("redb.creating");
        let _ = std::fs::remove_file(&staging);
        {
            let db = Database::create(&staging).map_err(|e| ControllerError::Db {
                path: staging.clone(),
                context: "creating".into(),
                source: Box::new(e.into()),
            })?;
            let me = Db {
                db,
                path: staging.clone(),
            };
            me.write("creating the tables", |txn| {
                tables::create_all(txn).map_err(me.fail("creating the tables"))?;
                let mut meta = txn
                    .open_table(tables::META)
                    .map_err(me.fail("opening meta"))?;
                me.put_json(&mut meta, tables::SCHEMA_KEY, &SCHEMA_VERSION)?;
                me.put_json(&mut meta, tables::SETTINGS_KEY, settings)?;
                Ok(())
            })?;
        }
        std::fs::rename(&staging, path)
            .map_err(ControllerError::io("renaming into place", path))?;
        Self::open(path)
    }

    /// Opens an existing database and checks its schema version.
    pub fn open(path: &Path) -> Result<Db> {
        let db = Database::open(path).map_err(|e| ControllerError::Db {
            path: path.to_owned(),
            context: "opening (is another `outpost-controller serve` running on this state?)"
                .into(),
            source: Box::new(e.into()),
        })?;
        let me = Db {
            db,
            path: path.to_owned(),
        };
        let version: Option<u64> = me.read(|txn| {
            let meta = txn
                .open_table(tables::META)
                .map_err(me.fail("opening meta"))?;
            me.get_json(&meta, tables::SCHEMA_KEY)
        })?;
        if version != Some(SCHEMA_VERSION) {
            return Err(ControllerError::Invalid(format!(
                "database {} has schema version {version:?}; this binary knows {SCHEMA_VERSION}",
                path.display()
            )));
        }
        Ok(me)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Settings written by `init`.
    pub fn settings(&self) -> Result<Settings> {
        let s: Option<Settings> = self.read(|txn| {
            let meta = txn
                .open_table(tables::META)
                .map_err(self.fail("opening meta"))?;
            self.get_json(&meta, tables::SETTINGS_KEY)
        })?;
        s.ok_or_else(|| ControllerError::Invalid(format!("{}: no settings", self.path.display())))
    }

    pub(crate) fn fail<E: Into<redb::Error>>(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(E) -> ControllerError + '_ {
        let context = context.into();
        move |e| ControllerError::Db {
            path: self.path.clone(),
            context,
            source: Box::new(e.into()),
        }
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&ReadTransaction) -> Result<R>) -> Result<R> {
        let txn = self
            .db
            .begin_read()
            .map_err(self.fail("starting a read transaction"))?;
        f(&txn)
    }

    /// Runs `f` in one write transaction, committed (durably) when `f` succeeds.
    pub(crate) fn write<R>(
        &self,
        what: &str,
        f: impl FnOnce(&WriteTransaction) -> Result<R>,
    ) -> Result<R> {
        let txn = self
            .db
            .begin_write()
            .map_err(self.fail(format!("starting the transaction for {what}")))?;
        let out = f(&txn)?;
        txn.commit()
            .map_err(self.fail(format!("committing {what}")))?;
        Ok(out)
    }

    pub(crate) fn decode<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|source| ControllerError::Corrupt {
            path: self.path.clone(),
            what: what.to_owned(),
            source,
        })
    }

    pub(crate) fn get_json<T: DeserializeOwned>(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        let guard = table
            .get(key)
            .map_err(self.fail(format!("reading {key}")))?;
        guard.map(|g| self.decode(key, g.value())).transpose()
    }

    pub(crate) fn put_json<T: Serialize>(
        &self,
        table: &mut redb::Table<&'static str, &'static [u8]>,
        key: &str,
        value: &T,
    ) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|source| ControllerError::Corrupt {
            path: self.path.clone(),
            what: key.to_owned(),
            source,
        })?;
        table
            .insert(key, bytes.as_slice())
            .map_err(self.fail(format!("writing {key}")))?;
        Ok(())
    }
}
