//! What devices upload, on PostgreSQL: the last info, and the metrics and
//! log rings (bounded per device like the redb backend: the oldest entries
//! beyond the cap are deleted in the same transaction and counted).

use std::collections::HashMap;

use outpost_api::cloud::LogEntry;
use tokio_postgres::types::Json;
use tokio_postgres::Transaction;

use super::{signed, unsigned, PgStore};
use crate::db::{InfoRecord, LogAppend, LogLine, MetricsSample, RingMeta};
use crate::error::Result;

/// Rows read per query while scanning logs with a filter.
const SCAN_PAGE: i64 = 1000;

impl PgStore {
    /// Locks the device row (so a concurrent delete waits) and reports
    /// whether it exists.
    async fn lock_device(&self, tx: &Transaction<'_>, uuid: &str) -> Result<bool> {
        let row = tx
            .query_opt("SELECT 1 FROM devices WHERE uuid = $1 FOR SHARE", &[&uuid])
            .await
            .map_err(self.fail(format!("checking device {uuid}")))?;
        Ok(row.is_some())
    }

    /// The ring bookkeeping of `kind`, locked for this transaction.
    async fn lock_ring(&self, tx: &Transaction<'_>, uuid: &str, kind: &str) -> Result<RingMeta> {
        tx.execute(
            "INSERT INTO rings (uuid, kind, meta) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&uuid, &kind, &Json(RingMeta::default())],
        )
        .await
        .map_err(self.fail(format!("creating the {kind} ring of {uuid}")))?;
        let row = tx
            .query_one(
                "SELECT meta FROM rings WHERE uuid = $1 AND kind = $2 FOR UPDATE",
                &[&uuid, &kind],
            )
            .await
            .map_err(self.fail(format!("reading the {kind} ring of {uuid}")))?;
        Ok(row.get::<_, Json<RingMeta>>(0).0)
    }

    /// Deletes the oldest entries beyond `keep` and stores the bookkeeping;
    /// returns how many were dropped.
    async fn trim_and_save(
        &self,
        tx: &Transaction<'_>,
        uuid: &str,
        kind: &str,
        meta: &mut RingMeta,
        keep: u64,
    ) -> Result<u64> {
        let excess = meta.len().saturating_sub(keep);
        if excess > 0 {
            let end = meta.first + excess;
            let sql = format!("DELETE FROM {kind} WHERE uuid = $1 AND seq < $2");
            tx.execute(&sql, &[&uuid, &signed(end)])
                .await
                .map_err(self.fail(format!("dropping old {kind} of {uuid}")))?;
            meta.first = end;
            meta.dropped += excess;
        }
        tx.execute(
            "UPDATE rings SET meta = $3 WHERE uuid = $1 AND kind = $2",
            &[&uuid, &kind, &Json(&*meta)],
        )
        .await
        .map_err(self.fail(format!("storing the {kind} ring of {uuid}")))?;
        Ok(excess)
    }

    pub(crate) fn pg_put_info(&self, uuid: &str, record: &InfoRecord) -> Result<bool> {
        self.run(async {
            let client = self.client("storing info").await?;
            let n = client
                .execute(
                    "INSERT INTO info (uuid, record) SELECT uuid, $2 FROM devices WHERE uuid = $1
                     ON CONFLICT (uuid) DO UPDATE SET record = EXCLUDED.record",
                    &[&uuid, &Json(record)],
                )
                .await
                .map_err(self.fail(format!("storing info of {uuid}")))?;
            Ok(n == 1)
        })
    }

    pub(crate) fn pg_infos(&self, uuid: Option<&str>) -> Result<HashMap<String, InfoRecord>> {
        self.run(async {
            let client = self.client("reading info").await?;
            let rows = match uuid {
                None => client.query("SELECT uuid, record FROM info", &[]).await,
                Some(u) => {
                    client
                        .query("SELECT uuid, record FROM info WHERE uuid = $1", &[&u])
                        .await
                }
            }
            .map_err(self.fail("reading info"))?;
            Ok(rows
                .into_iter()
                .map(|r| (r.get(0), r.get::<_, Json<InfoRecord>>(1).0))
                .collect())
        })
    }

    pub(crate) fn pg_push_metrics(
        &self,
        uuid: &str,
        sample: &MetricsSample,
        keep: u64,
    ) -> Result<bool> {
        self.run(async {
            let mut client = self.client("storing metrics").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("storing metrics"))?;
            if !self.lock_device(&tx, uuid).await? {
                return Ok(false);
            }
            let mut meta = self.lock_ring(&tx, uuid, "metrics").await?;
            tx.execute(
                "INSERT INTO metrics (uuid, seq, record) VALUES ($1, $2, $3)",
                &[&uuid, &signed(meta.next), &Json(sample)],
            )
            .await
            .map_err(self.fail(format!("storing metrics of {uuid}")))?;
            meta.next += 1;
            self.trim_and_save(&tx, uuid, "metrics", &mut meta, keep)
                .await?;
            tx.commit().await.map_err(self.fail("committing metrics"))?;
            Ok(true)
        })
    }

    pub(crate) fn pg_metrics(&self, uuid: &str, n: usize) -> Result<Vec<MetricsSample>> {
        self.run(async {
            let client = self.client("reading metrics").await?;
            let rows = client
                .query(
                    "SELECT record FROM metrics WHERE uuid = $1 ORDER BY seq DESC LIMIT $2",
                    &[&uuid, &i64::try_from(n).unwrap_or(i64::MAX)],
                )
                .await
                .map_err(self.fail(format!("reading metrics of {uuid}")))?;
            let mut out: Vec<MetricsSample> = rows
                .into_iter()
                .map(|r| r.get::<_, Json<MetricsSample>>(0).0)
                .collect();
            out.reverse();
            Ok(out)
        })
    }

    pub(crate) fn pg_append_logs(
        &self,
        uuid: &str,
        batch: u64,
        lines: &[Vec<u8>],
        keep: u64,
    ) -> Result<Option<LogAppend>> {
        self.run(async {
            let mut client = self.client("storing logs").await?;
            let tx = client
                .transaction()
                .await
                .map_err(self.fail("storing logs"))?;
            if !self.lock_device(&tx, uuid).await? {
                return Ok(None);
            }
            let mut meta = self.lock_ring(&tx, uuid, "logs").await?;
            let last_seq = |m: &RingMeta| (!m.is_empty()).then(|| m.next - 1);
            if let Some(held) = meta.last_batch.filter(|held| batch <= *held) {
                return Ok(Some(LogAppend {
                    acked: held,
                    stored: false,
                    dropped: 0,
                    last_seq: last_seq(&meta),
                }));
            }
            let seqs: Vec<i64> = (0..lines.len() as u64)
                .map(|i| signed(meta.next + i))
                .collect();
            let texts: Vec<&str> = lines
                .iter()
                .map(|l| std::str::from_utf8(l).unwrap_or("null"))
                .collect();
            tx.execute(
                "INSERT INTO logs (uuid, seq, entry)
                 SELECT $1, s, e::jsonb FROM unnest($2::bigint[], $3::text[]) AS t(s, e)",
                &[&uuid, &seqs, &texts],
            )
            .await
            .map_err(self.fail(format!("storing logs of {uuid}")))?;
            meta.next += lines.len() as u64;
            meta.last_batch = Some(batch);
            let dropped = self
                .trim_and_save(&tx, uuid, "logs", &mut meta, keep)
                .await?;
            tx.commit().await.map_err(self.fail("committing logs"))?;
            Ok(Some(LogAppend {
                acked: batch,
                stored: true,
                dropped,
                last_seq: last_seq(&meta),
            }))
        })
    }

    pub(crate) fn pg_log_meta(&self, uuid: &str) -> Result<RingMeta> {
        self.run(async {
            let client = self.client("reading logs").await?;
            let row = client
                .query_opt(
                    "SELECT meta FROM rings WHERE uuid = $1 AND kind = 'logs'",
                    &[&uuid],
                )
                .await
                .map_err(self.fail(format!("reading the log ring of {uuid}")))?;
            Ok(row
                .map(|r| r.get::<_, Json<RingMeta>>(0).0)
                .unwrap_or_default())
        })
    }

    /// Scans lines of `uuid` forward from `start` (or backward below
    /// `start` when `backward`) a page at a time, keeping up to `limit`
    /// that pass `filter`; returns them in scan order and the last
    /// sequence number looked at.
    pub(crate) fn pg_scan_logs(
        &self,
        uuid: &str,
        start: u64,
        backward: bool,
        limit: usize,
        filter: &dyn Fn(&LogEntry) -> bool,
    ) -> Result<(Vec<LogLine>, Option<u64>)> {
        self.run(async {
            let client = self.client("reading logs").await?;
            let sql = if backward {
                "SELECT seq, entry FROM logs WHERE uuid = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
            } else {
                "SELECT seq, entry FROM logs WHERE uuid = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
            };
            let mut out = Vec::new();
            let mut scanned = None;
            let mut cursor = signed(start);
            while out.len() < limit {
                let rows = client
                    .query(sql, &[&uuid, &cursor, &SCAN_PAGE])
                    .await
                    .map_err(self.fail(format!("reading logs of {uuid}")))?;
                let page = rows.len();
                for r in rows {
                    let seq: i64 = r.get(0);
                    scanned = Some(unsigned(seq));
                    cursor = if backward { seq } else { seq + 1 };
                    let entry = r.get::<_, Json<LogEntry>>(1).0;
                    if filter(&entry) {
                        out.push(LogLine {
                            seq: unsigned(seq),
                            entry,
                        });
                        if out.len() >= limit {
                            break;
                        }
                    }
                }
                if page < SCAN_PAGE as usize {
                    break;
                }
            }
            Ok((out, scanned))
        })
    }
}
