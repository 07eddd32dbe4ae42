//! Device configs.

use redb::ReadableTable;

use super::records::{ConfigRecord, InfoRecord};
use super::{tables, Db};
use crate::error::Result;

impl Db {
    /// Every stored config, by device UUID.
    pub fn configs(&self) -> Result<Vec<(String, ConfigRecord)>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::CONFIGS)
                .map_err(self.fail("opening configs"))?;
            let mut out = Vec::new();
            for row in t.iter().map_err(self.fail("listing configs"))? {
                let (k, v) = row.map_err(self.fail("listing configs"))?;
                let uuid = k.value().to_owned();
                let record = self.decode(&format!("config of {uuid}"), v.value())?;
                out.push((uuid, record));
            }
            Ok(out)
        })
    }

    /// The config set for `uuid`.
    pub fn config(&self, uuid: &str) -> Result<Option<ConfigRecord>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::CONFIGS)
                .map_err(self.fail("opening configs"))?;
            self.get_json(&t, uuid)
        })
    }

    /// [`Db::set_config`] for several devices in one transaction (one
    /// fleet-wide change, one fsync). Devices that no longer exist are
    /// skipped; an error from `make` writes nothing.
    pub fn set_configs(
        &self,
        uuids: &[String],
        mut make: impl FnMut(&str, u64) -> Result<ConfigRecord>,
    ) -> Result<Vec<(String, ConfigRecord)>> {
        self.write("setting configs", |txn| {
            let mut out = Vec::with_capacity(uuids.len());
            for uuid in uuids {
                if let Some(record) = self.set_config_in(txn, uuid, |g| make(uuid, g))? {
                    out.push((uuid.clone(), record));
                }
            }
            Ok(out)
        })
    }

    fn set_config_in(
        &self,
        txn: &redb::WriteTransaction,
        uuid: &str,
        make: impl FnOnce(u64) -> Result<ConfigRecord>,
    ) -> Result<Option<ConfigRecord>> {
        if !self.device_exists(txn, uuid)? {
            return Ok(None);
        }
        let mut configs = txn
            .open_table(tables::CONFIGS)
            .map_err(self.fail("opening configs"))?;
        let info_table = txn
            .open_table(tables::INFO)
            .map_err(self.fail("opening info"))?;
        let previous: Option<ConfigRecord> = self.get_json(&configs, uuid)?;
        let info: Option<InfoRecord> = self.get_json(&info_table, uuid)?;
        let base = previous
            .map(|c| c.generation)
            .unwrap_or(0)
            .max(info.map(|i| i.info.config_generation).unwrap_or(0));
        let record = make(base + 1)?;
        self.put_json(&mut configs, uuid, &record)?;
        Ok(Some(record))
    }

    /// Stores the config `make(generation)` builds, in one transaction.
    /// The generation is one more than the higher of the last one set and
    /// the one the device last reported in effect (so a device that kept a
    /// higher generation from an earlier registration does not see the new
    /// config as a replay). `Ok(None)`: no such device; an error from
    /// `make` writes nothing.
    pub fn set_config(
        &self,
        uuid: &str,
        make: impl FnOnce(u64) -> Result<ConfigRecord>,
    ) -> Result<Option<ConfigRecord>> {
        self.write("setting a config", |txn| {
            self.set_config_in(txn, uuid, make)
        })
    }
}
