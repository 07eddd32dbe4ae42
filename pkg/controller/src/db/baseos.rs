//! Base OS artifacts in the redb file: table `base_os`, sha256 →
//! [`BaseOsRecord`]. The table is made on first use, so a file from
//! before it needs no migration.

use redb::{ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::Db;
use crate::error::Result;

/// sha256 → `BaseOsRecord`.
pub const BASE_OS: TableDefinition<&str, &[u8]> = TableDefinition::new("base_os");

/// A published base OS artifact (the bytes are a file in the state dir:
/// [`crate::baseos`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseOsRecord {
    /// sha256 of the squashfs, lowercase hex (also its file name).
    pub sha256: String,
    /// The version it was published as.
    pub version: String,
    /// Bytes.
    pub size: u64,
    /// When published (RFC 3339).
    pub added_at: String,
}

impl Db {
    /// Every stored base OS artifact, in no particular order.
    pub fn base_os_artifacts(&self) -> Result<Vec<BaseOsRecord>> {
        self.read(|txn| {
            let t = match txn.open_table(BASE_OS) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(self.fail("opening base_os")(e)),
            };
            let mut out = Vec::new();
            for row in t.iter().map_err(self.fail("listing base_os"))? {
                let (k, v) = row.map_err(self.fail("listing base_os"))?;
                out.push(self.decode(&format!("base OS artifact {}", k.value()), v.value())?);
            }
            Ok(out)
        })
    }

    /// Stores (or replaces) an artifact's record.
    pub fn put_base_os(&self, record: &BaseOsRecord) -> Result<()> {
        self.write("storing a base OS artifact", |txn| {
            let mut t = txn
                .open_table(BASE_OS)
                .map_err(self.fail("opening base_os"))?;
            self.put_json(&mut t, &record.sha256, record)
        })
    }

    /// Removes an artifact's record; `false` if there was none.
    pub fn delete_base_os(&self, sha256: &str) -> Result<bool> {
        self.write("deleting a base OS artifact", |txn| {
            let mut t = txn
                .open_table(BASE_OS)
                .map_err(self.fail("opening base_os"))?;
            let gone = t
                .remove(sha256)
                .map_err(self.fail(format!("deleting base OS artifact {sha256}")))?;
            Ok(gone.is_some())
        })
    }
}
