//! Schema 1 ↔ 2: the tables `active_apps` and `applied_purge_counters` are
//! dropped (issue 14). Both duplicated what the planner's app records hold,
//! and no decision ever read them:
//!
//! * `active_apps` (`uuid → ()`): the schema-1 agent wrote a marker for every
//!   record whose `was_active` is true, in the same transaction as the record;
//!   the planner reads `was_active` from the record.
//! * `applied_purge_counters` (`uuid → u64`): no agent wrote it; the purge
//!   counter last applied is the record's `applied.purge_counter`.
//!
//! Forward compares both tables with the records, logs what differs (the
//! records win: they are what the planner decided from) and deletes them.
//! Backward rebuilds both from the records, as a schema-1 agent would have
//! written them, so that agent runs on the downgraded file. Each step runs in
//! the schema transaction, so a crash leaves the file at version 1 or 2.
//!
//! The records are opaque JSON to this crate; these steps read two fields
//! (`was_active`, `applied.purge_counter`) leniently: a record without them,
//! or one that is not a JSON object, counts as not active and never applied.

use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, WriteTransaction};
use serde_json::Value;

use crate::error::MigrationError;
use crate::tables::{ACTIVE_APPS, APP_RECORDS, PURGE_COUNTERS};

/// What a schema-1 agent derived from one record.
#[derive(Debug, Default, PartialEq, Eq)]
struct Derived {
    active: bool,
    purge_counter: Option<u64>,
}

fn derive(json: &[u8]) -> Derived {
    let rec: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
    Derived {
        active: rec.get("was_active").and_then(Value::as_bool) == Some(true),
        // `AppConfig::purge_counter` defaults to 0 when absent
        purge_counter: rec
            .get("applied")
            .filter(|a| a.is_object())
            .map(|a| a.get("purge_counter").and_then(Value::as_u64).unwrap_or(0)),
    }
}

fn derive_all(txn: &WriteTransaction) -> Result<BTreeMap<String, Derived>, MigrationError> {
    let records = txn.open_table(APP_RECORDS)?;
    let mut out = BTreeMap::new();
    for row in records.iter()? {
        let (uuid, json) = row?;
        out.insert(uuid.value().to_string(), derive(json.value()));
    }
    Ok(out)
}

/// Forward step 1 → 2: checks the two tables against the records, then deletes them.
pub(crate) fn drop_dead_tables(txn: &WriteTransaction) -> Result<(), MigrationError> {
    let records = derive_all(txn)?;
    let (markers, markers_differ) = {
        let table = txn.open_table(ACTIVE_APPS)?;
        let mut marked = BTreeSet::new();
        for row in table.iter()? {
            marked.insert(row?.0.value().to_string());
        }
        let active: BTreeSet<String> = records
            .iter()
            .filter(|(_, d)| d.active)
            .map(|(u, _)| u.clone())
            .collect();
        (marked.len(), marked.symmetric_difference(&active).count())
    };
    let (counters, counters_differ) = {
        let table = txn.open_table(PURGE_COUNTERS)?;
        let (mut n, mut differ) = (0usize, 0usize);
        for row in table.iter()? {
            let (uuid, counter) = row?;
            n += 1;
            let applied = records.get(uuid.value()).and_then(|d| d.purge_counter);
            if applied != Some(counter.value()) {
                differ += 1;
            }
        }
        (n, differ)
    };
    if markers_differ > 0 || counters_differ > 0 {
        tracing::warn!(
            markers_differ,
            counters_differ,
            "active_apps / applied_purge_counters disagree with the app records; \
             the records are kept (the planner only ever decided from them)"
        );
    }
    txn.delete_table(ACTIVE_APPS)?;
    txn.delete_table(PURGE_COUNTERS)?;
    tracing::info!(
        markers,
        counters,
        records = records.len(),
        "dropped active_apps and applied_purge_counters"
    );
    Ok(())
}

/// Backward step 2 → 1: rebuilds both tables from the records.
pub(crate) fn recreate_dead_tables(txn: &WriteTransaction) -> Result<(), MigrationError> {
    let records = derive_all(txn)?;
    // start empty even if something left a table of that name behind
    txn.delete_table(ACTIVE_APPS)?;
    txn.delete_table(PURGE_COUNTERS)?;
    let mut active = txn.open_table(ACTIVE_APPS)?;
    let mut purges = txn.open_table(PURGE_COUNTERS)?;
    for (uuid, d) in &records {
        if d.active {
            active.insert(uuid.as_str(), ())?;
        }
        if let Some(counter) = d.purge_counter {
            purges.insert(uuid.as_str(), counter)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_only_from_the_two_fields_and_never_fails() {
        let table: &[(&[u8], Derived)] = &[
            (
                br#"{"was_active":true,"applied":{"purge_counter":3}}"#,
                Derived {
                    active: true,
                    purge_counter: Some(3),
                },
            ),
            (
                br#"{"was_active":false,"applied":{"uuid":"x"}}"#,
                Derived {
                    active: false,
                    purge_counter: Some(0),
                },
            ),
            (br#"{"applied":null,"restarts":2}"#, Derived::default()),
            (br#""just a string""#, Derived::default()),
            (br#"{"was_active":"yes"}"#, Derived::default()),
            (b"not json", Derived::default()),
        ];
        for (json, want) in table {
            assert_eq!(&derive(json), want, "{}", String::from_utf8_lossy(json));
        }
    }
}
