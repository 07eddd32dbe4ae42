//! The one error type of this crate: every variant names the store file and
//! what was being done, so a log line is enough to act on.

use std::path::{Path, PathBuf};

/// Error returned by a migration function; the runner wraps it with the
/// store path, the migration name and its versions.
pub type MigrationError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong while opening, reading or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb could not open or create the file (locked by another process, not a redb file, I/O).
    #[error("opening store {path}: {source} (only one process may hold it open)")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's reason.
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// The file exists but is not a redb database (no magic number).
    #[error(
        "store {path} is not a redb database (no redb header): another file, or a redb file \
         whose creation was interrupted outside outpost-store. Move it aside to start with an \
         empty store"
    )]
    NotAStore {
        /// The database file.
        path: PathBuf,
    },
    /// A file-system step around the database failed (creating, renaming, syncing).
    #[error("store {path}: {context}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A redb operation failed; `context` says which table and key.
    #[error("store {path}: {context}: {source}")]
    Redb {
        /// The database file.
        path: PathBuf,
        /// What was being done, e.g. `reading table app_records, key "…"`.
        context: String,
        /// redb's reason.
        #[source]
        source: Box<redb::Error>,
    },
    /// The file was written by a newer agent whose schema this binary does not know.
    #[error(
        "store {path} has schema version {found}, but this binary only knows versions up to \
         {supported}; refusing to open it rather than downgrade silently. Run the newer agent's \
         one-step schema rollback first, or run an agent that knows version {found}"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version recorded in the file.
        found: u32,
        /// Newest version this binary knows.
        supported: u32,
    },
    /// The file holds tables but no schema version: not a store written by this crate.
    #[error(
        "store {path} has tables ({tables}) but no schema version; it was not written by \
         outpost-store. Move it aside to start with an empty store"
    )]
    Unversioned {
        /// The database file.
        path: PathBuf,
        /// Names of the tables found, comma-separated.
        tables: String,
    },
    /// No forward migration starts at the version found in the file.
    #[error("store {path}: no migration from schema version {from} towards version {target}")]
    MissingMigration {
        /// The database file.
        path: PathBuf,
        /// Version with no migration starting at it.
        from: u32,
        /// Version the binary wants.
        target: u32,
    },
    /// A migration function failed; nothing of the migration was committed.
    #[error("store {path}: migration {name} (schema {from} -> {to}) failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// Migration name.
        name: &'static str,
        /// Version it starts from.
        from: u32,
        /// Version it produces.
        to: u32,
        /// The migration's reason.
        #[source]
        source: MigrationError,
    },
    /// A one-step rollback was asked for but is not possible.
    #[error("store {path}: cannot roll schema back: {reason}")]
    Rollback {
        /// The database file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// A value is larger than the documented bound for its kind.
    #[error("{what} is {size} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// What was being stored, e.g. `app record "…"`.
        what: String,
        /// Its size.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// A key (app UUID, handler name) is empty or too long.
    #[error("invalid {kind} {key:?}: {reason}")]
    InvalidKey {
        /// What the key names (`app UUID`, `handler name`).
        kind: &'static str,
        /// The key as given (cut to 80 characters).
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// An app record could not be serialised to JSON.
    #[error("encoding app record {uuid:?} as JSON: {source}")]
    Encode {
        /// App UUID.
        uuid: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A stored app record could not be read back as the requested type.
    #[error(
        "store {path}: table {table}, key {key:?}: stored JSON does not decode as the requested \
         record type: {source}"
    )]
    Decode {
        /// The database file.
        path: PathBuf,
        /// Table name.
        table: &'static str,
        /// Key of the record.
        key: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
    /// A counter would pass `u64::MAX`.
    #[error("store {path}: {what} for app {uuid:?} would overflow")]
    CounterOverflow {
        /// The database file.
        path: PathBuf,
        /// Which counter.
        what: &'static str,
        /// App UUID.
        uuid: String,
    },
}

/// Result with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps a redb error with the store path and what was being done.
pub(crate) fn redb_error(path: &Path, context: String, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb {
        path: path.to_path_buf(),
        context,
        source: Box::new(e.into()),
    }
}
