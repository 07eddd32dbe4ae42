//! `info` (last one per device) and `metrics` (a ring per device).

use std::collections::HashMap;

use redb::{ReadableTable, Table};

use super::records::{InfoRecord, MetricsSample, RingMeta};
use super::{tables, Db};
use crate::error::Result;

/// Metrics samples kept per device (a day at one a minute).
pub const METRICS_KEPT: u64 = 1440;

impl Db {
    /// Replaces the device's last info; `false` if the device is gone.
    pub fn put_info(&self, uuid: &str, record: &InfoRecord) -> Result<bool> {
        self.write("storing info", |txn| {
            if !self.device_exists(txn, uuid)? {
                return Ok(false);
            }
            let mut t = txn
                .open_table(tables::INFO)
                .map_err(self.fail("opening info"))?;
            self.put_json(&mut t, uuid, record)?;
            Ok(true)
        })
    }

    /// The device's last info.
    pub fn info(&self, uuid: &str) -> Result<Option<InfoRecord>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::INFO)
                .map_err(self.fail("opening info"))?;
            self.get_json(&t, uuid)
        })
    }

    /// Every device's last info, by UUID.
    pub fn infos(&self) -> Result<HashMap<String, InfoRecord>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::INFO)
                .map_err(self.fail("opening info"))?;
            let mut out = HashMap::new();
            for row in t.iter().map_err(self.fail("listing info"))? {
                let (k, v) = row.map_err(self.fail("listing info"))?;
                let uuid = k.value().to_owned();
                let rec = self.decode(&format!("info of {uuid}"), v.value())?;
                out.insert(uuid, rec);
            }
            Ok(out)
        })
    }

    pub(crate) fn ring_meta(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        uuid: &str,
    ) -> Result<RingMeta> {
        Ok(self.get_json(table, uuid)?.unwrap_or_default())
    }

    /// Drops the oldest entries of a ring beyond `keep`; returns how many.
    pub(crate) fn trim_ring(
        &self,
        table: &mut Table<(&'static str, u64), &'static [u8]>,
        uuid: &str,
        meta: &mut RingMeta,
        keep: u64,
    ) -> Result<u64> {
        let excess = meta.len().saturating_sub(keep);
        if excess == 0 {
            return Ok(0);
        }
        let end = meta.first + excess;
        table
            .retain_in((uuid, meta.first)..(uuid, end), |_, _| false)
            .map_err(self.fail("dropping old entries"))?;
        meta.first = end;
        meta.dropped += excess;
        Ok(excess)
    }

    /// Appends a metrics sample, keeping the last `keep`; `false` if the device is gone.
    pub fn push_metrics(&self, uuid: &str, sample: &MetricsSample, keep: u64) -> Result<bool> {
        let bytes =
            serde_json::to_vec(sample).map_err(|source| crate::ControllerError::Corrupt {
                path: self.path.clone(),
                what: format!("metrics of {uuid}"),
                source,
            })?;
        self.write("storing metrics", |txn| {
            if !self.device_exists(txn, uuid)? {
                return Ok(false);
            }
            let mut meta_t = txn
                .open_table(tables::METRICS_META)
                .map_err(self.fail("opening metrics_meta"))?;
            let mut t = txn
                .open_table(tables::METRICS)
                .map_err(self.fail("opening metrics"))?;
            let mut meta = self.ring_meta(&meta_t, uuid)?;
            t.insert((uuid, meta.next), bytes.as_slice())
                .map_err(self.fail("writing metrics"))?;
            meta.next += 1;
            self.trim_ring(&mut t, uuid, &mut meta, keep)?;
            self.put_json(&mut meta_t, uuid, &meta)?;
            Ok(true)
        })
    }

    /// The device's last `n` metrics samples, oldest first.
    pub fn metrics(&self, uuid: &str, n: usize) -> Result<Vec<MetricsSample>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::METRICS)
                .map_err(self.fail("opening metrics"))?;
            let mut out = Vec::new();
            let range = t
                .range((uuid, 0)..=(uuid, u64::MAX))
                .map_err(self.fail("reading metrics"))?;
            for row in range.rev().take(n) {
                let (_, v) = row.map_err(self.fail("reading metrics"))?;
                out.push(self.decode(&format!("metrics of {uuid}"), v.value())?);
            }
            out.reverse();
            Ok(out)
        })
    }
}
