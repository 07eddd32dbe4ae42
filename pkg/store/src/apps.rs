//! Per-app state: the planner's records (opaque JSON). Everything the planner
//! remembers about an app is in its record (whether it was active, the
//! config and purge counter last applied).

use std::collections::BTreeMap;

use redb::ReadableTable;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::batch::Batch;
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::tables;

impl Store {
    /// Stores the record of app `uuid` (JSON, at most
    /// [`MAX_APP_RECORD_BYTES`](crate::MAX_APP_RECORD_BYTES)).
    pub fn put_app_record<T: Serialize + ?Sized>(&self, uuid: &str, rec: &T) -> Result<()> {
        self.commit(Batch::new().put(uuid, rec)?)
    }

    /// The record of app `uuid`, if there is one.
    pub fn app_record<T: DeserializeOwned>(&self, uuid: &str) -> Result<Option<T>> {
        self.read_table(tables::APP_RECORDS, |table| {
            let guard = table
                .get(uuid)
                .map_err(self.fail(|| format!("reading table app_records, key {uuid:?}")))?;
            guard.map(|g| self.decode(uuid, g.value())).transpose()
        })
    }

    /// All app records by UUID. One record that no longer decodes as `T` fails
    /// the whole call with [`StoreError::Decode`] naming its UUID.
    pub fn app_records<T: DeserializeOwned>(&self) -> Result<BTreeMap<String, T>> {
        self.read_table(tables::APP_RECORDS, |table| {
            let iter = table
                .iter()
                .map_err(self.fail(|| "iterating table app_records"))?;
            let mut out = BTreeMap::new();
            for entry in iter {
                let (key, value) = entry.map_err(self.fail(|| "iterating table app_records"))?;
                let uuid = key.value().to_string();
                let rec = self.decode(&uuid, value.value())?;
                out.insert(uuid, rec);
            }
            Ok(out)
        })
    }

    /// Forgets app `uuid` entirely: record and local counters, in one transaction. Removing an unknown app is not an error.
    pub fn remove_app_record(&self, uuid: &str) -> Result<()> {
        self.commit(Batch::new().remove(uuid))
    }

    fn decode<T: DeserializeOwned>(&self, uuid: &str, json: &[u8]) -> Result<T> {
        serde_json::from_slice(json).map_err(|source| StoreError::Decode {
            path: self.path().to_path_buf(),
            table: "app_records",
            key: uuid.to_string(),
            source,
        })
    }
}
