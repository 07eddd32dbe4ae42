//! Config checkpoints (EVE: `lastconfig` and `lastconfig.bak`): the last
//! applied config document, and the known-good copy refreshed only after a
//! healthy window. The device boots from them when the controller is away.

use redb::{ReadableTable, Table};

use crate::error::Result;
use crate::store::Store;
use crate::tables::{self, APPLIED, KNOWN_GOOD};

/// A saved config document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The document bytes exactly as received (signed envelope or JSON/YAML).
    pub raw: Vec<u8>,
    /// The config's generation.
    pub generation: u64,
    /// When it was saved (applied) or promoted (known-good), ms since the epoch.
    pub saved_ms: u64,
}

/// Writes `cp` under `key` inside an open write transaction.
pub(crate) fn put_checkpoint(
    table: &mut Table<&str, (u64, u64, &[u8])>,
    key: &str,
    raw: &[u8],
    generation: u64,
    saved_ms: u64,
) -> Result<(), redb::StorageError> {
    table.insert(key, (generation, saved_ms, raw))?;
    Ok(())
}

fn get_checkpoint(
    table: &impl ReadableTable<&'static str, (u64, u64, &'static [u8])>,
    key: &str,
) -> Result<Option<Checkpoint>, redb::StorageError> {
    Ok(table.get(key)?.map(|guard| {
        let (generation, saved_ms, raw) = guard.value();
        Checkpoint {
            raw: raw.to_vec(),
            generation,
            saved_ms,
        }
    }))
}

impl Store {
    /// The last applied config, if one was saved.
    pub fn applied_config(&self) -> Result<Option<Checkpoint>> {
        self.checkpoint(APPLIED)
    }

    /// The known-good config, if one was promoted.
    pub fn known_good_config(&self) -> Result<Option<Checkpoint>> {
        self.checkpoint(KNOWN_GOOD)
    }

    /// Copies the applied config to known-good, stamped `now_ms`; called after
    /// the device ran healthy for the configured window (default 10 min).
    /// Returns false, writing nothing, when there is no applied config or
    /// known-good already holds the same bytes and generation.
    pub fn promote_known_good(&self, now_ms: u64) -> Result<bool> {
        self.write("promoting the applied config to known-good", |txn| {
            let mut table = txn
                .open_table(tables::CHECKPOINTS)
                .map_err(self.fail(|| "opening table config_checkpoints"))?;
            let Some(applied) = get_checkpoint(&table, APPLIED)
                .map_err(self.fail(|| "reading table config_checkpoints, key \"applied\""))?
            else {
                return Ok(false);
            };
            let known = get_checkpoint(&table, KNOWN_GOOD)
                .map_err(self.fail(|| "reading table config_checkpoints, key \"known_good\""))?;
            if known.is_some_and(|k| k.generation == applied.generation && k.raw == applied.raw) {
                return Ok(false);
            }
            put_checkpoint(
                &mut table,
                KNOWN_GOOD,
                &applied.raw,
                applied.generation,
                now_ms,
            )
            .map_err(self.fail(|| "writing table config_checkpoints, key \"known_good\""))?;
            Ok(true)
        })
    }

    fn checkpoint(&self, key: &'static str) -> Result<Option<Checkpoint>> {
        self.read_table(tables::CHECKPOINTS, |table| {
            get_checkpoint(table, key)
                .map_err(self.fail(|| format!("reading table config_checkpoints, key {key:?}")))
        })
    }
}
