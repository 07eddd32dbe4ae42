//! [`Batch`]: one decision written in one write transaction — the new applied
//! config together with every app record it changes. Either all of it is on disk after a crash, or none of it.

use std::io;

use redb::WriteTransaction;
use serde::Serialize;

use crate::checkpoint::put_checkpoint;
use crate::error::{Result, StoreError};
use crate::limits::{check_key, check_size, MAX_APP_RECORD_BYTES, MAX_CONFIG_BYTES};
use crate::store::Store;
use crate::tables::{self, APPLIED};

/// One write, applied in the order the builder calls were made (a later call
/// for the same key wins).
#[derive(Debug)]
enum Op {
    Config {
        raw: Vec<u8>,
        generation: u64,
        now_ms: u64,
    },
    Put {
        uuid: String,
        json: Vec<u8>,
    },
    Remove {
        uuid: String,
    },
}

/// The writes of one decision, committed atomically by [`Store::commit`].
///
/// ```no_run
/// # fn f(store: &outpost_store::Store) -> outpost_store::Result<()> {
/// let batch = outpost_store::Batch::new()
///     .config(b"{\"generation\":7}".to_vec(), 7, 1_700_000_000_000)
///     .put("0b7c…", &serde_json::json!({"phase": "running"}))?
///     .remove("1d2e…");
/// store.commit(batch)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
#[must_use = "a batch does nothing until it is passed to Store::commit"]
pub struct Batch {
    ops: Vec<Op>,
}

/// A `Vec<u8>` writer that refuses to grow past `max`, so serialising an
/// oversized record stops at the bound instead of allocating all of it.
struct BoundedWriter {
    buf: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl io::Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            self.overflowed = true;
            return Err(io::Error::other("record over the size limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn encode_record<T: Serialize + ?Sized>(uuid: &str, rec: &T) -> Result<Vec<u8>> {
    let mut w = BoundedWriter {
        buf: Vec::new(),
        max: MAX_APP_RECORD_BYTES,
        overflowed: false,
    };
    match serde_json::to_writer(&mut w, rec) {
        Ok(()) => Ok(w.buf),
        Err(_) if w.overflowed => Err(StoreError::TooLarge {
            what: format!("app record {uuid:?} (JSON)"),
            size: MAX_APP_RECORD_BYTES + 1,
            max: MAX_APP_RECORD_BYTES,
        }),
        Err(source) => Err(StoreError::Encode {
            uuid: uuid.to_string(),
            source,
        }),
    }
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of writes collected.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing was collected; committing it writes nothing.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Adds the writes of `other` after this batch's, so writes prepared
    /// (and checked) one object at a time still commit in one transaction.
    pub fn append(mut self, other: Batch) -> Self {
        self.ops.extend(other.ops);
        self
    }

    /// Sets the last applied config (at most [`MAX_CONFIG_BYTES`]).
    pub fn config(mut self, raw: impl Into<Vec<u8>>, generation: u64, now_ms: u64) -> Self {
        self.ops.push(Op::Config {
            raw: raw.into(),
            generation,
            now_ms,
        });
        self
    }

    /// Sets the record of app `uuid`, stored as JSON of at most
    /// [`MAX_APP_RECORD_BYTES`]; fails here if it does not serialise or is too big.
    pub fn put<T: Serialize + ?Sized>(mut self, uuid: &str, rec: &T) -> Result<Self> {
        check_key("app UUID", uuid)?;
        let json = encode_record(uuid, rec)?;
        self.ops.push(Op::Put {
            uuid: uuid.to_string(),
            json,
        });
        Ok(self)
    }

    /// Forgets app `uuid`: its record and local counters (an app that left
    /// the config leaves nothing behind).
    pub fn remove(mut self, uuid: &str) -> Self {
        self.ops.push(Op::Remove {
            uuid: uuid.to_string(),
        });
        self
    }

    /// Checks every bound before the transaction starts.
    fn validate(&self) -> Result<()> {
        for op in &self.ops {
            match op {
                Op::Config {
                    raw, generation, ..
                } => check_size(
                    || format!("config document (generation {generation})"),
                    raw.len(),
                    MAX_CONFIG_BYTES,
                )?,
                Op::Put { uuid, .. } | Op::Remove { uuid } => check_key("app UUID", uuid)?,
            }
        }
        Ok(())
    }
}

impl Store {
    /// Writes the whole batch in one write transaction: after a crash the
    /// store holds all of it or none of it. An empty batch writes nothing.
    pub fn commit(&self, batch: Batch) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        self.write("a decision batch", |txn| self.apply(txn, &batch.ops))
    }

    /// Records `raw` (at most [`MAX_CONFIG_BYTES`](crate::MAX_CONFIG_BYTES)) as
    /// the last applied config. The store does not compare generations: the
    /// config sources refuse replays before anything is applied.
    pub fn save_applied_config(&self, raw: &[u8], generation: u64, now_ms: u64) -> Result<()> {
        self.commit(Batch::new().config(raw, generation, now_ms))
    }

    fn apply(&self, txn: &WriteTransaction, ops: &[Op]) -> Result<()> {
        let open = |name: &'static str| self.fail(move || format!("opening table {name}"));
        let mut checkpoints = txn
            .open_table(tables::CHECKPOINTS)
            .map_err(open("config_checkpoints"))?;
        let mut records = txn
            .open_table(tables::APP_RECORDS)
            .map_err(open("app_records"))?;
        let mut locals = txn
            .open_table(tables::LOCAL_COUNTERS)
            .map_err(open("local_counters"))?;
        let write = |table: &'static str, key: &str| {
            let key = key.to_string();
            self.fail(move || format!("writing table {table}, key {key:?}"))
        };
        for op in ops {
            match op {
                Op::Config {
                    raw,
                    generation,
                    now_ms,
                } => put_checkpoint(&mut checkpoints, APPLIED, raw, *generation, *now_ms)
                    .map_err(write("config_checkpoints", APPLIED))?,
                Op::Put { uuid, json } => {
                    records
                        .insert(uuid.as_str(), json.as_slice())
                        .map_err(write("app_records", uuid))?;
                }
                Op::Remove { uuid } => {
                    let key = uuid.as_str();
                    records.remove(key).map_err(write("app_records", key))?;
                    locals.remove(key).map_err(write("local_counters", key))?;
                }
            }
        }
        Ok(())
    }
}
