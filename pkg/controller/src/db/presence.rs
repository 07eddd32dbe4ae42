//! When each device was last seen, kept in the store so every replica (and
//! a restarted controller) shows it: table `presence`, uuid →
//! `(last_seen, polling_at)` in Unix seconds. Written in batches by
//! [`crate::state::Controller::flush_presence`]; made on first use, so a
//! file from before it needs no migration.

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition, TableError};

use super::Db;
use crate::error::Result;

/// uuid → (last seen, last time a replica held its config long-poll).
pub const PRESENCE: TableDefinition<&str, (i64, i64)> = TableDefinition::new("presence");

/// What the store knows of a device's presence (Unix seconds; 0: never).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// Its last authenticated request (or a moment its long-poll was held).
    pub last_seen: i64,
    /// The last moment some replica held a config long-poll of it.
    pub polling_at: i64,
}

impl From<(i64, i64)> for Presence {
    /// A stored `(last_seen, polling_at)`.
    fn from((last_seen, polling_at): (i64, i64)) -> Self {
        Presence {
            last_seen,
            polling_at,
        }
    }
}

impl Presence {
    /// The later of each field.
    pub fn merge(self, other: Presence) -> Presence {
        Presence {
            last_seen: self.last_seen.max(other.last_seen),
            polling_at: self.polling_at.max(other.polling_at),
        }
    }
}

impl Db {
    /// Every device's stored presence.
    pub fn presence(&self) -> Result<HashMap<String, Presence>> {
        self.read(|txn| {
            let t = match txn.open_table(PRESENCE) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
                Err(e) => return Err(self.fail("opening presence")(e)),
            };
            let mut out = HashMap::new();
            for row in t.iter().map_err(self.fail("listing presence"))? {
                let (k, v) = row.map_err(self.fail("listing presence"))?;
                out.insert(k.value().to_owned(), Presence::from(v.value()));
            }
            Ok(out)
        })
    }

    /// One device's stored presence.
    pub fn presence_of(&self, uuid: &str) -> Result<Option<Presence>> {
        self.read(|txn| {
            let t = match txn.open_table(PRESENCE) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(self.fail("opening presence")(e)),
            };
            let row = t.get(uuid).map_err(self.fail("reading presence"))?;
            Ok(row.map(|v| Presence::from(v.value())))
        })
    }

    /// Records `rows` in one transaction, keeping the later time of each
    /// field; devices that no longer exist are skipped.
    pub fn record_presence(&self, rows: &[(String, Presence)]) -> Result<()> {
        self.write("recording device presence", |txn| {
            let mut t = txn
                .open_table(PRESENCE)
                .map_err(self.fail("opening presence"))?;
            for (uuid, p) in rows {
                if !self.device_exists(txn, uuid)? {
                    continue;
                }
                let old = t
                    .get(uuid.as_str())
                    .map_err(self.fail("reading presence"))?
                    .map(|v| Presence::from(v.value()))
                    .unwrap_or_default();
                let new = old.merge(*p);
                t.insert(uuid.as_str(), (new.last_seen, new.polling_at))
                    .map_err(self.fail("recording presence"))?;
            }
            Ok(())
        })
    }
}
