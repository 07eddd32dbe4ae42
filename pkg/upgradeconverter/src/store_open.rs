//! Opening the state database for a conversion: the schema version is read
//! first (so the report can show what the forward migrations did), and a
//! dry run works on a throw-away copy so that not even a migration or the
//! handler records touch the real file.

use std::path::{Path, PathBuf};

use outpost_store::redb::{self, ReadableDatabase};
use outpost_store::Store;

use crate::error::{ConvertError, Result};

/// The schema version recorded in the store at `path`, read without
/// migrating or creating anything; `None` when there is no file or it
/// cannot be read (the open that follows reports why).
pub fn probe_schema_version(path: &Path) -> Option<u32> {
    const SCHEMA: redb::TableDefinition<&str, u32> = redb::TableDefinition::new("schema");
    if !path.exists() {
        return None;
    }
    let db = redb::ReadOnlyDatabase::open(path).ok()?;
    let txn = db.begin_read().ok()?;
    let table = txn.open_table(SCHEMA).ok()?;
    let v = table.get("version").ok()??.value();
    Some(v)
}

/// A store opened for a conversion run.
#[derive(Debug)]
pub struct OpenedStore {
    /// The store (a temporary copy in a dry run).
    pub store: Store,
    /// Its schema version before it was opened ([`probe_schema_version`]).
    pub schema_before: Option<u32>,
    copy: Option<PathBuf>,
}

impl OpenedStore {
    /// Opens the store at `path` (running its forward migrations). With
    /// `dry_run`, opens a copy in the temp dir instead (a new empty store
    /// when there is no file), removed again on drop.
    pub fn open(path: &Path, dry_run: bool) -> Result<OpenedStore> {
        let schema_before = probe_schema_version(path);
        if !dry_run {
            return Ok(OpenedStore {
                store: Store::open(path)?,
                schema_before,
                copy: None,
            });
        }
        let copy = std::env::temp_dir().join(format!(
            "outpost-upgrade-dry-run-{}.redb",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&copy);
        if path.exists() {
            std::fs::copy(path, &copy).map_err(|e| ConvertError::io("copying", path, e))?;
        }
        let store = Store::open(&copy);
        let store = match store {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&copy);
                return Err(e.into());
            }
        };
        Ok(OpenedStore {
            store,
            schema_before,
            copy: Some(copy),
        })
    }
}

impl Drop for OpenedStore {
    fn drop(&mut self) {
        if let Some(c) = self.copy.take() {
            let _ = std::fs::remove_file(c);
        }
    }
}
