//! Every public method of `outpost-store` against a real redb file in a temp dir.

mod app_records;
mod batch;
mod checkpoint;
mod counters;
mod create;
mod handlers;
mod migration_v2;
mod schema;
#[path = "../common/v1.rs"]
mod v1;

use std::path::PathBuf;

use outpost_store::Store;
use tempfile::TempDir;

/// A temp dir and the path of a store file inside it (not created yet).
struct TempStore {
    /// Keeps the directory alive.
    _dir: TempDir,
    /// `<dir>/outpost.redb`.
    path: PathBuf,
}

impl TempStore {
    /// A fresh directory.
    fn new() -> TempStore {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outpost.redb");
        TempStore { _dir: dir, path }
    }

    /// Opens (creating on first use) the store.
    fn open(&self) -> Store {
        Store::open(&self.path).unwrap()
    }
}
