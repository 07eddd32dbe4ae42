//! [`Store`]: opening the file, the schema version, and the transaction
//! helpers every other module uses.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use redb::{
    Database, ReadOnlyTable, ReadableDatabase, TableDefinition, TableError, TableHandle,
    WriteTransaction,
};

use crate::create;
use crate::error::{redb_error, Result, StoreError};
use crate::schema::{self, Schema};
use crate::tables;

/// The agent's persistent decisions: one redb file, one process at a time.
///
/// Share it between threads by reference or `Arc`; write transactions are
/// serialised by redb, each commit is durable (fsync) when it returns.
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path`, creating it if missing, and brings its schema
    /// to [`SCHEMA_VERSION`](crate::SCHEMA_VERSION). A file with a newer schema
    /// is refused with [`StoreError::SchemaTooNew`].
    ///
    /// A new file is built as `<path>.creating` and renamed into place, so a
    /// crash during creation never leaves an unopenable file (redb alone would).
    pub fn open(path: &Path) -> Result<Store> {
        Self::open_with_schema(path, &schema::CURRENT)
    }

    /// [`Store::open`] with an explicit schema: for the binary that introduces
    /// the next version, and for testing migrations.
    pub fn open_with_schema(path: &Path, schema: &Schema) -> Result<Store> {
        let db = create::open_or_create(path, schema)?;
        schema::upgrade(&db, path, schema)?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
        })
    }

    /// Runs the one backward step of `schema` (version N → N-1) on the file at
    /// `path`, which must be at version N; returns the version it now has.
    /// The newer binary calls this before an older one is booted.
    pub fn roll_back_schema(path: &Path, schema: &Schema) -> Result<u32> {
        let db = create::open_existing(path)?;
        schema::roll_back(&db, path, schema)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u32> {
        let version = self.read_table(tables::SCHEMA, |table| {
            let guard = table
                .get(tables::SCHEMA_KEY)
                .map_err(self.fail(|| "reading table schema, key \"version\""))?;
            Ok(guard.map(|g| g.value()))
        })?;
        // `open` wrote it; missing only if something else rewrote the file
        version.ok_or_else(|| StoreError::Unversioned {
            path: self.path.clone(),
            tables: "schema".into(),
        })
    }

    /// A closure turning a redb error into [`StoreError::Redb`] with `context`.
    pub(crate) fn fail<'a, E, C>(
        &'a self,
        context: impl FnOnce() -> C + 'a,
    ) -> impl FnOnce(E) -> StoreError + 'a
    where
        E: Into<redb::Error>,
        C: Display,
    {
        move |e| redb_error(&self.path, context().to_string(), e)
    }

    /// Runs `f` on `def` in a fresh read transaction. A table that does not
    /// exist yet (a migration that never wrote to it) reads as empty: `R::default()`.
    pub(crate) fn read_table<K, V, R>(
        &self,
        def: TableDefinition<K, V>,
        f: impl FnOnce(&ReadOnlyTable<K, V>) -> Result<R>,
    ) -> Result<R>
    where
        K: redb::Key + 'static,
        V: redb::Value + 'static,
        R: Default,
    {
        let txn = self
            .db
            .begin_read()
            .map_err(self.fail(|| "starting a read transaction"))?;
        match txn.open_table(def) {
            Ok(table) => f(&table),
            Err(TableError::TableDoesNotExist(_)) => Ok(R::default()),
            Err(e) => Err(redb_error(
                &self.path,
                format!("opening table {} for reading", def.name()),
                e,
            )),
        }
    }

    /// Runs `f` in one write transaction and commits it; an error from `f`
    /// aborts everything `f` wrote.
    pub(crate) fn write<R>(
        &self,
        what: &str,
        f: impl FnOnce(&WriteTransaction) -> Result<R>,
    ) -> Result<R> {
        let txn = self
            .db
            .begin_write()
            .map_err(self.fail(|| format!("starting the write transaction for {what}")))?;
        let out = f(&txn)?;
        txn.commit()
            .map_err(self.fail(|| format!("committing {what}")))?;
        Ok(out)
    }
}
