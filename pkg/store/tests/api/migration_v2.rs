//! Schema 1 → 2 (dropping `active_apps` and `applied_purge_counters`) and
//! back, on a file written by the schema-1 API (`tests/fixtures/v1_agent.redb`)
//! and on hand-built schema-1 files.

use std::collections::{BTreeMap, BTreeSet};

use outpost_store::{Store, SCHEMA_VERSION};
use serde_json::{json, Value};

use crate::v1::{self, Contents, DEAD_TABLES};
use crate::TempStore;

const A1: &str = "11111111-1111-4111-8111-111111111111";
const A2: &str = "22222222-2222-4222-8222-222222222222";
const A3: &str = "33333333-3333-4333-8333-333333333333";
const A4: &str = "44444444-4444-4444-8444-444444444444";

fn has_dead_tables(path: &std::path::Path) -> [bool; 2] {
    let names = v1::tables(path);
    DEAD_TABLES.map(|t| names.contains(t))
}

fn records(store: &Store) -> BTreeMap<String, Value> {
    store.app_records().unwrap()
}

#[test]
fn the_schema_1_fixture_is_what_the_schema_1_agent_wrote() {
    let t = TempStore::new();
    v1::copy_fixture(&t.path);
    let c = v1::read(&t.path, true);
    assert_eq!(c.version, 1);
    assert_eq!(c.records.len(), 4);
    assert_eq!(c.active, BTreeSet::from([A1.into(), A3.into()]));
    assert_eq!(
        c.purge_counters,
        BTreeMap::from([(A1.into(), 3), (A2.into(), 0), (A3.into(), 0)])
    );
}

#[test]
fn opening_a_schema_1_file_drops_the_dead_tables_and_keeps_everything_else() {
    let t = TempStore::new();
    v1::copy_fixture(&t.path);
    let before = v1::read(&t.path, true);
    let store = t.open();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(SCHEMA_VERSION, 2);
    let recs = records(&store);
    assert_eq!(recs[A1]["was_active"], true);
    assert_eq!(recs[A1]["applied"]["purge_counter"], 3);
    assert_eq!(store.local_counters(A1).unwrap(), (1, 0));
    assert_eq!(store.applied_config().unwrap().unwrap().generation, 4);
    assert!(store.known_good_config().unwrap().is_some());
    assert!(store
        .handler_done("convertPersistVolumes")
        .unwrap()
        .is_some());
    drop(store);
    assert_eq!(has_dead_tables(&t.path), [false, false]);
    let after = v1::read(&t.path, false);
    assert_eq!(
        after,
        Contents {
            version: 2,
            purge_counters: BTreeMap::new(),
            active: BTreeSet::new(),
            ..before
        },
        "every other table byte for byte"
    );
}

#[test]
fn rollback_rebuilds_the_schema_1_tables_and_forward_again_round_trips() {
    let t = TempStore::new();
    v1::copy_fixture(&t.path);
    let original = v1::read(&t.path, true);
    drop(t.open());
    let at_2 = v1::read(&t.path, false);

    let schema = outpost_store::schema::CURRENT;
    assert_eq!(Store::roll_back_schema(&t.path, &schema).unwrap(), 1);
    // read with schema 1's table types: a schema-1 agent opens it
    assert_eq!(v1::read(&t.path, true), original, "1 -> 2 -> 1");

    drop(t.open());
    assert_eq!(v1::read(&t.path, false), at_2, "2 -> 1 -> 2");
    assert_eq!(has_dead_tables(&t.path), [false, false]);

    // the schema-1 agent ran in between: its new decisions come forward too
    Store::roll_back_schema(&t.path, &schema).unwrap();
    let mut c = v1::read(&t.path, true);
    c.records
        .insert("new".into(), br#"{"was_active":true}"#.to_vec());
    c.active.insert("new".into());
    c.records.remove(A1);
    c.active.remove(A1);
    c.purge_counters.remove(A1);
    std::fs::remove_file(&t.path).unwrap();
    v1::write(&t.path, &c);
    let store = t.open();
    let recs = records(&store);
    assert!(recs.contains_key("new") && !recs.contains_key(A1));
    assert_eq!(recs.len(), 4);
}

#[test]
fn when_the_dead_tables_disagree_the_records_win() {
    let t = TempStore::new();
    let rec = |v: Value| serde_json::to_vec(&v).unwrap();
    let c = Contents {
        version: 1,
        records: BTreeMap::from([
            (
                "a".into(),
                rec(json!({"was_active": true, "applied": {"purge_counter": 5}})),
            ),
            ("b".into(), rec(json!({"was_active": false, "applied": {}}))),
            ("c".into(), rec(json!("not an object"))),
        ]),
        active: BTreeSet::from(["b".into(), "orphan".into()]),
        purge_counters: BTreeMap::from([("a".into(), 4), ("orphan".into(), 1)]),
        ..Contents::default()
    };
    v1::write(&t.path, &c);
    let store = t.open();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(records(&store).len(), 3);
    drop(store);
    assert_eq!(
        v1::read(&t.path, false).records,
        c.records,
        "records untouched"
    );

    Store::roll_back_schema(&t.path, &outpost_store::schema::CURRENT).unwrap();
    let back = v1::read(&t.path, true);
    assert_eq!(back.active, BTreeSet::from(["a".into()]));
    assert_eq!(
        back.purge_counters,
        BTreeMap::from([("a".into(), 5), ("b".into(), 0)])
    );
    assert_eq!(back.records, c.records);
}

#[test]
fn a_new_file_is_built_at_1_and_migrated_like_an_old_one() {
    let t = TempStore::new();
    let store = t.open();
    assert_eq!(store.schema_version().unwrap(), 2);
    store
        .put_app_record(A4, &json!({"was_active": true}))
        .unwrap();
    drop(store);
    assert_eq!(has_dead_tables(&t.path), [false, false]);
    Store::roll_back_schema(&t.path, &outpost_store::schema::CURRENT).unwrap();
    assert_eq!(v1::read(&t.path, true).active, BTreeSet::from([A4.into()]));
}
