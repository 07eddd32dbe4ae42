//! Opening the database file, and creating it atomically.
//!
//! redb's `Database::create` writes its magic number last, so a process
//! killed while creating a new file leaves a non-empty file without one, and
//! every later open fails with `InvalidData` (seen in `tests/crash_safety.rs`).
//! A device killed during its first boot would never start again. So a new
//! store is built completely under `<name>.creating` (redb file + schema
//! transaction), synced, and renamed into place: after a crash the store
//! either does not exist yet or is whole. A leftover `.creating` file is
//! from an interrupted creation and is removed.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use redb::{Database, DatabaseError, StorageError};

use crate::error::{Result, StoreError};
use crate::schema::{self, Schema};

fn io<'a>(path: &'a Path, context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        context,
        source,
    }
}

fn database_error(path: &Path, source: DatabaseError) -> StoreError {
    match source {
        DatabaseError::Storage(StorageError::Io(e)) if e.kind() == ErrorKind::InvalidData => {
            StoreError::NotAStore {
                path: path.to_path_buf(),
            }
        }
        source => StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        },
    }
}

/// Opens an existing database file (never creates one).
pub(crate) fn open_existing(path: &Path) -> Result<Database> {
    Database::open(path).map_err(|e| database_error(path, e))
}

/// Path of the file a new store is built in before it is renamed into place.
pub(crate) fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    path.with_file_name(name)
}

/// Opens the store file, first creating it atomically if it is missing or
/// empty (an empty file holds nothing, so replacing it loses nothing).
pub(crate) fn open_or_create(path: &Path, schema: &Schema) -> Result<Database> {
    let missing = match fs::metadata(path) {
        Ok(meta) => meta.len() == 0,
        Err(e) if e.kind() == ErrorKind::NotFound => true,
        Err(e) => return Err(io(path, "reading file metadata")(e)),
    };
    if missing {
        create_atomically(path, schema)?;
    }
    open_existing(path)
}

fn create_atomically(path: &Path, schema: &Schema) -> Result<()> {
    let staging = staging_path(path);
    match fs::remove_file(&staging) {
        Ok(()) => {
            tracing::warn!(file = %staging.display(), "removed a store left over from an interrupted creation")
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io(&staging, "removing an interrupted creation")(e)),
    }
    {
        let db = Database::create(&staging).map_err(|e| database_error(&staging, e))?;
        schema::upgrade(&db, &staging, schema)?;
    } // closed cleanly here
    File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io(&staging, "syncing the new store"))?;
    fs::rename(&staging, path).map_err(io(path, "renaming the new store into place"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "syncing the store's directory"))?;
    tracing::info!(store = %path.display(), version = schema.version, "store created");
    Ok(())
}
