//! A bounded on-disk queue of gzip'd log batches under `/persist/cloud/logq`.
//!
//! * One file per batch, `batch-<seq>-<lines>-<cursor nanos>-<cursor same>.gz`,
//!   written to a temporary name, fsync'd and renamed: a crash leaves either
//!   the whole batch or nothing. The name also carries the read cursor (the
//!   memlogd timestamp of the batch's last line and how many lines had that
//!   timestamp), so after a restart the shipper resumes right after it.
//! * Sequence numbers never go back, across restarts and even when the
//!   queue directory is lost: a new queue starts at the current time in
//!   microseconds. The controller acknowledges a number it already holds
//!   without storing it again, so resending after a crash duplicates nothing.
//! * When the queue is over its byte bound the **oldest** batch is deleted
//!   and counted (batches and lines), persistently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::error::CloudError;
use crate::identity::write_atomic;

/// Where the reader stands: everything up to this point is queued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    /// memlogd timestamp of the last queued line, Unix nanoseconds.
    pub nanos: i128,
    /// How many queued lines carry exactly that timestamp.
    pub same: u32,
}

impl Cursor {
    /// Whether a line stamped `nanos`, the `nth` (1-based) with that stamp
    /// in the ring, was queued already.
    pub fn covers(&self, nanos: i128, nth: u32) -> bool {
        nanos < self.nanos || (nanos == self.nanos && nth <= self.same)
    }
}

/// Counters, for metrics and `outpost status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Batches waiting.
    pub batches: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Batches deleted unsent because the queue was full (ever).
    pub dropped_batches: u64,
    /// Lines in them.
    pub dropped_lines: u64,
    /// Batches acknowledged by the controller (this run).
    pub acked_batches: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct StateFile {
    next_seq: u64,
    cursor: Cursor,
    dropped_batches: u64,
    dropped_lines: u64,
}

struct Entry {
    path: PathBuf,
    bytes: u64,
    lines: u64,
}

struct Inner {
    state: StateFile,
    batches: BTreeMap<u64, Entry>,
    bytes: u64,
    acked: u64,
}

/// The queue.
pub struct LogQueue {
    dir: PathBuf,
    max_bytes: u64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for LogQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogQueue")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

const STATE: &str = "state.json";

fn parse_name(name: &str) -> Option<(u64, u64, Cursor)> {
    let rest = name.strip_prefix("batch-")?.strip_suffix(".gz")?;
    let mut it = rest.split('-');
    let seq = it.next()?.parse().ok()?;
    let lines = it.next()?.parse().ok()?;
    let nanos = it.next()?.parse().ok()?;
    let same = it.next()?.parse().ok()?;
    it.next()
        .is_none()
        .then_some((seq, lines, Cursor { nanos, same }))
}

impl LogQueue {
    /// Opens (or creates) the queue in `dir`, bounded to `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, CloudError> {
        std::fs::create_dir_all(dir).map_err(|e| CloudError::io(dir, e))?;
        let sp = dir.join(STATE);
        let mut state: StateFile = match std::fs::read(&sp) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(file = %sp.display(), error = %e, "log queue state unreadable; starting a new sequence");
                StateFile::default()
            }),
            Err(_) => StateFile::default(),
        };
        if state.next_seq == 0 {
            state.next_seq = now_micros();
        }
        let mut batches = BTreeMap::new();
        let mut bytes = 0;
        for de in std::fs::read_dir(dir).map_err(|e| CloudError::io(dir, e))? {
            let de = de.map_err(|e| CloudError::io(dir, e))?;
            let name = de.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(de.path());
                continue;
            }
            let Some((seq, lines, cursor)) = parse_name(&name) else {
                continue;
            };
            let size = de.metadata().map(|m| m.len()).unwrap_or(0);
            // A batch written after the state file was last saved.
            if seq >= state.next_seq {
                state.next_seq = seq + 1;
            }
            state.cursor = state.cursor.max(cursor);
            bytes += size;
            batches.insert(
                seq,
                Entry {
                    path: de.path(),
                    bytes: size,
                    lines,
                },
            );
        }
        Ok(LogQueue {
            dir: dir.to_path_buf(),
            max_bytes,
            inner: Mutex::new(Inner {
                state,
                batches,
                bytes,
                acked: 0,
            }),
        })
    }

    /// Everything up to here is queued (or was sent).
    pub fn cursor(&self) -> Cursor {
        self.inner.lock().unwrap().state.cursor
    }

    /// Queues a batch of JSON lines (each already serialised, no newline)
    /// ending at `cursor`; returns its sequence number. Drops the oldest
    /// batches when over the bound.
    pub fn push(&self, lines: &[String], cursor: Cursor) -> Result<u64, CloudError> {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        for l in lines {
            gz.write_all(l.as_bytes())
                .and_then(|()| gz.write_all(b"\n"))
                .map_err(|e| CloudError::io(&self.dir, e))?;
        }
        let body = gz.finish().map_err(|e| CloudError::io(&self.dir, e))?;
        let mut inner = self.inner.lock().unwrap();
        let seq = inner.state.next_seq;
        let path = self.dir.join(format!(
            "batch-{seq:020}-{}-{}-{}.gz",
            lines.len(),
            cursor.nanos,
            cursor.same
        ));
        write_atomic(&path, &body, 0o600)?;
        inner.state.next_seq = seq + 1;
        inner.state.cursor = cursor;
        inner.bytes += body.len() as u64;
        inner.batches.insert(
            seq,
            Entry {
                path,
                bytes: body.len() as u64,
                lines: lines.len() as u64,
            },
        );
        while inner.bytes > self.max_bytes && inner.batches.len() > 1 {
            let (old, e) = inner.batches.pop_first().expect("non-empty");
            let _ = std::fs::remove_file(&e.path);
            inner.bytes -= e.bytes;
            inner.state.dropped_batches += 1;
            inner.state.dropped_lines += e.lines;
            tracing::warn!(
                batch = old,
                lines = e.lines,
                "log queue full; dropped the oldest batch"
            );
        }
        self.save_state(&inner)?;
        Ok(seq)
    }

    fn save_state(&self, inner: &Inner) -> Result<(), CloudError> {
        let json = serde_json::to_vec(&inner.state).expect("serialisable");
        write_atomic(&self.dir.join(STATE), &json, 0o600)
    }

    /// The oldest batch: its number and gzip'd bytes.
    pub fn oldest(&self) -> Result<Option<(u64, Vec<u8>)>, CloudError> {
        let inner = self.inner.lock().unwrap();
        let Some((seq, e)) = inner.batches.first_key_value() else {
            return Ok(None);
        };
        let bytes = std::fs::read(&e.path).map_err(|err| CloudError::io(&e.path, err))?;
        Ok(Some((*seq, bytes)))
    }

    /// The controller holds every batch up to `acked`: delete them.
    pub fn ack(&self, acked: u64) {
        let mut inner = self.inner.lock().unwrap();
        while let Some((&seq, _)) = inner.batches.first_key_value() {
            if seq > acked {
                break;
            }
            let e = inner.batches.remove(&seq).expect("present");
            if let Err(err) = std::fs::remove_file(&e.path) {
                tracing::warn!(file = %e.path.display(), error = %err, "removing an acknowledged log batch");
            }
            inner.bytes -= e.bytes;
            inner.acked += 1;
        }
    }

    /// Counters.
    pub fn stats(&self) -> QueueStats {
        let inner = self.inner.lock().unwrap();
        QueueStats {
            batches: inner.batches.len() as u64,
            bytes: inner.bytes,
            dropped_batches: inner.state.dropped_batches,
            dropped_lines: inner.state.dropped_lines,
            acked_batches: inner.acked,
        }
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, tag: &str) -> Vec<String> {
        (0..n)
            .map(|i| format!("{{\"msg\":\"{tag}-{i}\"}}"))
            .collect()
    }

    #[test]
    fn survives_reopen_and_acks_in_order() {
        let d = tempfile::tempdir().unwrap();
        let q = LogQueue::open(d.path(), 1 << 20).unwrap();
        let a = q
            .push(&lines(3, "a"), Cursor { nanos: 10, same: 1 })
            .unwrap();
        let b = q
            .push(&lines(2, "b"), Cursor { nanos: 20, same: 2 })
            .unwrap();
        assert_eq!(b, a + 1);
        drop(q);
        let q = LogQueue::open(d.path(), 1 << 20).unwrap();
        assert_eq!(q.cursor(), Cursor { nanos: 20, same: 2 });
        assert_eq!(q.oldest().unwrap().unwrap().0, a);
        q.ack(a);
        assert_eq!(q.oldest().unwrap().unwrap().0, b);
        let c = q
            .push(&lines(1, "c"), Cursor { nanos: 30, same: 1 })
            .unwrap();
        assert_eq!(c, b + 1, "numbers never go back");
        q.ack(c);
        assert!(q.oldest().unwrap().is_none());
        assert_eq!(q.stats().batches, 0);
    }

    #[test]
    fn a_batch_written_before_the_state_file_still_counts() {
        let d = tempfile::tempdir().unwrap();
        let q = LogQueue::open(d.path(), 1 << 20).unwrap();
        let a = q
            .push(&lines(1, "a"), Cursor { nanos: 5, same: 1 })
            .unwrap();
        drop(q);
        // Simulate a crash between the batch rename and the state write.
        std::fs::write(
            d.path().join(STATE),
            serde_json::to_vec(&StateFile {
                next_seq: a,
                cursor: Cursor::default(),
                ..Default::default()
            })
            .unwrap(),
        )
        .unwrap();
        let q = LogQueue::open(d.path(), 1 << 20).unwrap();
        assert_eq!(q.cursor(), Cursor { nanos: 5, same: 1 });
        let b = q
            .push(&lines(1, "b"), Cursor { nanos: 6, same: 1 })
            .unwrap();
        assert_eq!(b, a + 1);
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let q = LogQueue::open(d.path(), 2048).unwrap();
        let mut seqs = Vec::new();
        for i in 0..20 {
            // Incompressible-ish lines so each batch is a few hundred bytes.
            let l: Vec<String> = (0..8)
                .map(|j| format!("{:x}", sha2_like(i * 100 + j)))
                .collect();
            seqs.push(
                q.push(
                    &l,
                    Cursor {
                        nanos: i as i128,
                        same: 1,
                    },
                )
                .unwrap(),
            );
        }
        let st = q.stats();
        assert!(st.bytes <= 2048, "{st:?}");
        assert!(st.dropped_batches > 0, "{st:?}");
        assert_eq!(st.dropped_lines, st.dropped_batches * 8);
        // What is left is the newest, in order.
        assert_eq!(
            q.oldest().unwrap().unwrap().0,
            seqs[st.dropped_batches as usize]
        );
        drop(q);
        let q = LogQueue::open(d.path(), 2048).unwrap();
        assert_eq!(
            q.stats().dropped_batches,
            st.dropped_batches,
            "drops are persistent"
        );
    }

    fn sha2_like(i: u64) -> u128 {
        let mut x = i as u128 + 0x9e3779b97f4a7c15;
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x = x.wrapping_mul(0x2545F4914F6CDD1D2545F4914F6CDD1D);
        }
        x
    }

    #[test]
    fn cursor_covers() {
        let c = Cursor { nanos: 10, same: 2 };
        assert!(c.covers(9, 5));
        assert!(c.covers(10, 2));
        assert!(!c.covers(10, 3));
        assert!(!c.covers(11, 1));
    }
}
