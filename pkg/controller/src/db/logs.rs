//! Device logs: a ring of lines per device, filled by batches that are
//! stored at most once each.

use outpost_api::cloud::LogEntry;

use super::records::RingMeta;
use super::{tables, Db};
use crate::error::Result;

/// Log lines kept per device; older ones are dropped first (and counted).
pub const LOG_LINES_KEPT: u64 = 100_000;

/// What [`Db::append_logs`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogAppend {
    /// Highest batch number held for the device (the `LogAck`).
    pub acked: u64,
    /// The batch was new and stored (`false`: already held, acknowledged only).
    pub stored: bool,
    /// Lines dropped by this append to stay within the bound.
    pub dropped: u64,
    /// Sequence number of the newest stored line, if any.
    pub last_seq: Option<u64>,
}

/// One stored line with its per-device sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// Sequence number (increasing per device).
    pub seq: u64,
    /// The line.
    pub entry: LogEntry,
}

impl Db {
    /// Stores batch `batch` (lines already validated, JSON each) unless a
    /// batch numbered at or above it is held, keeping the last `keep` lines.
    /// `Ok(None)`: the device is gone.
    pub fn append_logs(
        &self,
        uuid: &str,
        batch: u64,
        lines: &[Vec<u8>],
        keep: u64,
    ) -> Result<Option<LogAppend>> {
        self.write("storing logs", |txn| {
            if !self.device_exists(txn, uuid)? {
                return Ok(None);
            }
            let mut meta_t = txn
                .open_table(tables::LOGS_META)
                .map_err(self.fail("opening logs_meta"))?;
            let mut meta = self.ring_meta(&meta_t, uuid)?;
            let last_seq = |m: &RingMeta| (!m.is_empty()).then(|| m.next - 1);
            if let Some(held) = meta.last_batch.filter(|held| batch <= *held) {
                return Ok(Some(LogAppend {
                    acked: held,
                    stored: false,
                    dropped: 0,
                    last_seq: last_seq(&meta),
                }));
            }
            let mut t = txn
                .open_table(tables::LOGS)
                .map_err(self.fail("opening logs"))?;
            for line in lines {
                t.insert((uuid, meta.next), line.as_slice())
                    .map_err(self.fail("writing logs"))?;
                meta.next += 1;
            }
            let dropped = self.trim_ring(&mut t, uuid, &mut meta, keep)?;
            meta.last_batch = Some(batch);
            self.put_json(&mut meta_t, uuid, &meta)?;
            Ok(Some(LogAppend {
                acked: batch,
                stored: true,
                dropped,
                last_seq: last_seq(&meta),
            }))
        })
    }

    /// Ring bookkeeping of the device's logs.
    pub fn log_meta(&self, uuid: &str) -> Result<RingMeta> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::LOGS_META)
                .map_err(self.fail("opening logs_meta"))?;
            self.ring_meta(&t, uuid)
        })
    }

    /// Up to `limit` lines after sequence number `after` (from the oldest
    /// when `None`) that pass `filter`, oldest first, and the last sequence
    /// number looked at (pass it as the next `after`).
    pub fn logs_after(
        &self,
        uuid: &str,
        after: Option<u64>,
        limit: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<(Vec<LogLine>, Option<u64>)> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::LOGS)
                .map_err(self.fail("opening logs"))?;
            let start = after.map_or(0, |a| a.saturating_add(1));
            let mut out = Vec::new();
            let mut scanned = after;
            for row in t
                .range((uuid, start)..=(uuid, u64::MAX))
                .map_err(self.fail("reading logs"))?
            {
                let (k, v) = row.map_err(self.fail("reading logs"))?;
                let seq = k.value().1;
                scanned = Some(seq);
                let entry: LogEntry =
                    self.decode(&format!("log line {seq} of {uuid}"), v.value())?;
                if filter(&entry) {
                    out.push(LogLine { seq, entry });
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok((out, scanned))
        })
    }

    /// The last `n` lines that pass `filter`, oldest first.
    pub fn logs_tail(
        &self,
        uuid: &str,
        n: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<Vec<LogLine>> {
        self.read(|txn| {
            let t = txn
                .open_table(tables::LOGS)
                .map_err(self.fail("opening logs"))?;
            let mut out = Vec::new();
            if n == 0 {
                return Ok(out);
            }
            for row in t
                .range((uuid, 0)..=(uuid, u64::MAX))
                .map_err(self.fail("reading logs"))?
                .rev()
            {
                let (k, v) = row.map_err(self.fail("reading logs"))?;
                let seq = k.value().1;
                let entry: LogEntry =
                    self.decode(&format!("log line {seq} of {uuid}"), v.value())?;
                if filter(&entry) {
                    out.push(LogLine { seq, entry });
                    if out.len() >= n {
                        break;
                    }
                }
            }
            out.reverse();
            Ok(out)
        })
    }
}
