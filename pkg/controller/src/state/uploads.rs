//! Storing what devices upload.

use std::io::Read;
use std::sync::Arc;

use axum::http::StatusCode;
use outpost_api::cloud::{DeviceInfo, DeviceMetrics, LogAck, LogEntry};

use super::{Controller, DeviceSlot};
use crate::db::{InfoRecord, MetricsSample};
use crate::limits::Stats;
use crate::reply::Failure;
use crate::signing::now_rfc3339;

fn gone(slot: &DeviceSlot) -> Failure {
    Failure::unauthorized(format!("device {} was deleted", slot.uuid()))
}

/// Decompresses a gzip log batch and checks every line is a `LogEntry`;
/// returns the lines re-encoded as JSON. Errors: 413 beyond `max_bytes`
/// decompressed, 400 for bad gzip or a bad line (numbered from 1).
pub fn decode_log_batch(gz: &[u8], max_bytes: usize) -> Result<Vec<Vec<u8>>, Failure> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|e| Failure::bad_request(format!("log batch is not valid gzip: {e}")))?;
    if text.len() > max_bytes {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("log batch decompresses to more than {max_bytes} bytes"),
        ));
    }
    let mut lines = Vec::new();
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry: LogEntry = serde_json::from_slice(line).map_err(|e| {
            Failure::bad_request(format!("log batch line {}: not a log entry: {e}", i + 1))
        })?;
        lines.push(serde_json::to_vec(&entry).map_err(Failure::internal)?);
    }
    Ok(lines)
}

impl Controller {
    /// Keeps the device's last info.
    pub async fn store_info(
        self: &Arc<Self>,
        slot: &Arc<DeviceSlot>,
        info: DeviceInfo,
    ) -> Result<(), Failure> {
        let uuid = slot.uuid();
        let record = InfoRecord {
            received_at: now_rfc3339(),
            info,
        };
        let stored = self
            .blocking(move |c| c.db.put_info(&uuid, &record))
            .await?;
        stored.then_some(()).ok_or_else(|| gone(slot))
    }

    /// Appends a metrics sample to the device's ring.
    pub async fn store_metrics(
        self: &Arc<Self>,
        slot: &Arc<DeviceSlot>,
        metrics: DeviceMetrics,
    ) -> Result<(), Failure> {
        let uuid = slot.uuid();
        let sample = MetricsSample {
            received_at: now_rfc3339(),
            metrics,
        };
        let keep = self.limits.metrics_kept;
        let stored = self
            .blocking(move |c| c.db.push_metrics(&uuid, &sample, keep))
            .await?;
        stored.then_some(()).ok_or_else(|| gone(slot))
    }

    /// Stores log batch `batch` unless already held; answers the ack.
    pub async fn store_logs(
        self: &Arc<Self>,
        slot: &Arc<DeviceSlot>,
        batch: u64,
        lines: Vec<Vec<u8>>,
    ) -> Result<LogAck, Failure> {
        let uuid = slot.uuid();
        let keep = self.limits.log_lines_kept;
        let count = lines.len() as u64;
        let appended = self
            .blocking(move |c| c.db.append_logs(&uuid, batch, &lines, keep))
            .await?
            .ok_or_else(|| gone(slot))?;
        if appended.stored {
            Stats::bump(&self.stats.log_batches_stored);
            self.stats
                .log_lines_stored
                .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            self.stats
                .log_lines_dropped
                .fetch_add(appended.dropped, std::sync::atomic::Ordering::Relaxed);
            if let Some(last) = appended.last_seq {
                slot.logs.send_replace(last + 1);
            }
        } else {
            Stats::bump(&self.stats.log_batches_duplicate);
            tracing::debug!(device = %slot.uuid(), batch, held = appended.acked, "log batch already held");
        }
        Ok(LogAck {
            acked: appended.acked,
        })
    }
}
