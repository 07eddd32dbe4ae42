//! The schema-1 file layout, read and written with redb directly and the
//! exact table types of schema 1: a file these functions read is one a
//! schema-1 agent opens (redb refuses a table opened with other types).

#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use outpost_store::redb::{
    self, Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
};

const SCHEMA: TableDefinition<&str, u32> = TableDefinition::new("schema");
const CHECKPOINTS: TableDefinition<&str, (u64, u64, &[u8])> =
    TableDefinition::new("config_checkpoints");
const APP_RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("app_records");
const PURGE_COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("applied_purge_counters");
const ACTIVE_APPS: TableDefinition<&str, ()> = TableDefinition::new("active_apps");
const LOCAL_COUNTERS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("local_counters");
const HANDLERS: TableDefinition<&str, u64> = TableDefinition::new("upgrade_handlers");

/// The two tables schema 2 dropped.
pub const DEAD_TABLES: [&str; 2] = ["active_apps", "applied_purge_counters"];

/// Everything a store file holds, table by table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    pub version: u32,
    pub checkpoints: BTreeMap<String, (u64, u64, Vec<u8>)>,
    pub records: BTreeMap<String, Vec<u8>>,
    pub locals: BTreeMap<String, (u64, u64)>,
    pub handlers: BTreeMap<String, u64>,
    /// Schema 1 only.
    pub purge_counters: BTreeMap<String, u64>,
    /// Schema 1 only.
    pub active: BTreeSet<String>,
}

fn read_table<K, V, T>(
    txn: &redb::ReadTransaction,
    def: TableDefinition<K, V>,
    f: impl Fn(redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>) -> T,
) -> Vec<T>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let table = txn
        .open_table(def)
        .unwrap_or_else(|e| panic!("table {}: {e}", def.name()));
    table
        .iter()
        .unwrap()
        .map(|r| {
            let (k, v) = r.unwrap();
            f(k, v)
        })
        .collect()
}

/// Names of the tables in the file.
pub fn tables(path: &Path) -> BTreeSet<String> {
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let names = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect();
    names
}

/// Reads every table; with `schema_1`, also the two dead tables with their
/// schema-1 types (panics if one is missing or typed differently).
pub fn read(path: &Path, schema_1: bool) -> Contents {
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let version = txn
        .open_table(SCHEMA)
        .unwrap()
        .get("version")
        .unwrap()
        .unwrap()
        .value();
    let mut c = Contents {
        version,
        checkpoints: read_table(&txn, CHECKPOINTS, |k, v| {
            let (g, s, raw) = v.value();
            (k.value().to_string(), (g, s, raw.to_vec()))
        })
        .into_iter()
        .collect(),
        records: read_table(&txn, APP_RECORDS, |k, v| {
            (k.value().to_string(), v.value().to_vec())
        })
        .into_iter()
        .collect(),
        locals: read_table(&txn, LOCAL_COUNTERS, |k, v| {
            (k.value().to_string(), v.value())
        })
        .into_iter()
        .collect(),
        handlers: read_table(&txn, HANDLERS, |k, v| (k.value().to_string(), v.value()))
            .into_iter()
            .collect(),
        ..Contents::default()
    };
    if schema_1 {
        c.purge_counters = read_table(&txn, PURGE_COUNTERS, |k, v| {
            (k.value().to_string(), v.value())
        })
        .into_iter()
        .collect();
        c.active = read_table(&txn, ACTIVE_APPS, |k, _| k.value().to_string())
            .into_iter()
            .collect();
    }
    c
}

/// Writes a schema-1 file holding `c` (which must be at version 1).
pub fn write(path: &Path, c: &Contents) {
    assert_eq!(c.version, 1);
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        txn.open_table(SCHEMA)
            .unwrap()
            .insert("version", 1)
            .unwrap();
        let mut t = txn.open_table(CHECKPOINTS).unwrap();
        for (k, (g, s, raw)) in &c.checkpoints {
            t.insert(k.as_str(), (*g, *s, raw.as_slice())).unwrap();
        }
        let mut t = txn.open_table(APP_RECORDS).unwrap();
        for (k, v) in &c.records {
            t.insert(k.as_str(), v.as_slice()).unwrap();
        }
        let mut t = txn.open_table(LOCAL_COUNTERS).unwrap();
        for (k, v) in &c.locals {
            t.insert(k.as_str(), *v).unwrap();
        }
        let mut t = txn.open_table(HANDLERS).unwrap();
        for (k, v) in &c.handlers {
            t.insert(k.as_str(), *v).unwrap();
        }
        let mut t = txn.open_table(PURGE_COUNTERS).unwrap();
        for (k, v) in &c.purge_counters {
            t.insert(k.as_str(), *v).unwrap();
        }
        let mut t = txn.open_table(ACTIVE_APPS).unwrap();
        for k in &c.active {
            t.insert(k.as_str(), ()).unwrap();
        }
    }
    txn.commit().unwrap();
}

/// The fixture written by the schema-1 API (`tests/gen_v1_fixture.rs` of
/// commit 2490943, the agent's write path), copied to `dest`.
pub fn copy_fixture(dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1_agent.redb");
    std::fs::copy(src, dest).unwrap();
}
