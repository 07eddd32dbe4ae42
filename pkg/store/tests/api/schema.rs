//! Schema version checks and the migration mechanism, with synthetic
//! migrations (v0 → v1, v2 → v3 → v4 on top of the real v1 → v2, and the
//! backward step v3 → v2). The real v1 ↔ v2 steps: `migration_v2.rs`.

use outpost_store::redb::{
    self, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use outpost_store::schema::DROP_DEAD_TABLES;
use outpost_store::{Migration, MigrationError, Schema, Store, StoreError, SCHEMA_VERSION};
use serde::Deserialize;

use crate::TempStore;

const SCHEMA_T: TableDefinition<&str, u32> = TableDefinition::new("schema");
const LEGACY_APPS: TableDefinition<&str, &str> = TableDefinition::new("apps_v0");
const APP_RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("app_records");
const NOTES: TableDefinition<&str, &str> = TableDefinition::new("notes_v3");
const LOG: TableDefinition<u32, &str> = TableDefinition::new("migration_log");

#[derive(Debug, PartialEq, Deserialize)]
struct Rec {
    phase: String,
}

/// A "version 0" file: apps as JSON strings in a table the v1 schema does not have.
fn write_v0_file(path: &std::path::Path) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(SCHEMA_T)
        .unwrap()
        .insert("version", 0)
        .unwrap();
    {
        let mut apps = txn.open_table(LEGACY_APPS).unwrap();
        apps.insert("app-1", r#"{"phase":"running"}"#).unwrap();
        apps.insert("app-2", r#"{"phase":"halted"}"#).unwrap();
    }
    txn.commit().unwrap();
}

fn v0_to_v1(txn: &WriteTransaction) -> Result<(), MigrationError> {
    {
        let legacy = txn.open_table(LEGACY_APPS)?;
        let mut records = txn.open_table(APP_RECORDS)?;
        for row in legacy.iter()? {
            let (uuid, json) = row?;
            records.insert(uuid.value(), json.value().as_bytes())?;
        }
    }
    txn.delete_table(LEGACY_APPS)?;
    Ok(())
}

fn v0_to_v1_fails_halfway(txn: &WriteTransaction) -> Result<(), MigrationError> {
    txn.open_table(APP_RECORDS)?.insert("half", &b"{}"[..])?;
    txn.delete_table(LEGACY_APPS)?;
    Err("legacy row app-2 is malformed".into())
}

const SCHEMA_V1_FROM_V0: Schema = Schema {
    version: 1,
    forward: &[Migration {
        name: "apps_v0_to_app_records",
        from: 0,
        to: 1,
        run: v0_to_v1,
    }],
    backward: None,
};

const SCHEMA_V1_BROKEN: Schema = Schema {
    version: 1,
    forward: &[Migration {
        name: "broken",
        from: 0,
        to: 1,
        run: v0_to_v1_fails_halfway,
    }],
    backward: None,
};

fn add_notes(txn: &WriteTransaction) -> Result<(), MigrationError> {
    txn.open_table(NOTES)?.insert("hello", "world")?;
    Ok(())
}

fn drop_notes(txn: &WriteTransaction) -> Result<(), MigrationError> {
    txn.delete_table(NOTES)?;
    Ok(())
}

const SCHEMA_V3: Schema = Schema {
    version: 3,
    forward: &[
        DROP_DEAD_TABLES,
        Migration {
            name: "add_notes",
            from: 2,
            to: 3,
            run: add_notes,
        },
    ],
    backward: Some(Migration {
        name: "drop_notes",
        from: 3,
        to: 2,
        run: drop_notes,
    }),
};

/// The current schema without its backward step.
const SCHEMA_V2_NO_BACKWARD: Schema = Schema {
    backward: None,
    ..outpost_store::schema::CURRENT
};

fn log(txn: &WriteTransaction, what: &'static str) -> Result<(), MigrationError> {
    let mut table = txn.open_table(LOG)?;
    let next = table.len()? as u32;
    table.insert(next, what)?;
    Ok(())
}

fn step_2_3(txn: &WriteTransaction) -> Result<(), MigrationError> {
    log(txn, "2->3")
}

fn step_3_4(txn: &WriteTransaction) -> Result<(), MigrationError> {
    log(txn, "3->4")
}

const SCHEMA_V4: Schema = Schema {
    version: 4,
    // deliberately not sorted: steps are chosen by `from`
    forward: &[
        Migration {
            name: "three_four",
            from: 3,
            to: 4,
            run: step_3_4,
        },
        DROP_DEAD_TABLES,
        Migration {
            name: "two_three",
            from: 2,
            to: 3,
            run: step_2_3,
        },
    ],
    backward: None,
};

fn read_version(path: &std::path::Path) -> u32 {
    let db = Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(SCHEMA_T).unwrap();
    let v = table.get("version").unwrap().unwrap().value();
    v
}

fn has_table(path: &std::path::Path, name: &str) -> bool {
    let db = Database::create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let found = txn
        .list_tables()
        .unwrap()
        .any(|t| redb::TableHandle::name(&t) == name);
    found
}

#[test]
fn new_store_records_the_current_version_and_keeps_it() {
    let t = TempStore::new();
    assert_eq!(t.open().schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 2);
    let store = t.open();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(store.path(), t.path);
}

#[test]
fn newer_schema_is_refused_naming_both_versions_and_left_untouched() {
    let t = TempStore::new();
    drop(Store::open_with_schema(&t.path, &SCHEMA_V3).unwrap());
    let err = Store::open(&t.path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("schema version 3") && text.contains("up to 2"),
        "{text}"
    );
    assert!(text.contains(&t.path.display().to_string()), "{text}");
    assert_eq!(read_version(&t.path), 3);
    assert!(has_table(&t.path, "notes_v3"));
}

#[test]
fn synthetic_v0_to_v1_migration_moves_the_data() {
    let t = TempStore::new();
    write_v0_file(&t.path);
    let store = Store::open_with_schema(&t.path, &SCHEMA_V1_FROM_V0).unwrap();
    assert_eq!(store.schema_version().unwrap(), 1);
    let records = store.app_records::<Rec>().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records["app-2"].phase, "halted");
    drop(store);
    assert!(!has_table(&t.path, "apps_v0"));
    // migrated once: the plain binary opens it (running 1 -> 2); the tables
    // the migration never created read as empty and are writable
    let store = t.open();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(
        store.app_record::<Rec>("app-1").unwrap().unwrap().phase,
        "running"
    );
    assert_eq!(store.applied_config().unwrap(), None);
    assert_eq!(store.local_counters("app-1").unwrap(), (0, 0));
    assert_eq!(store.handler_done("h").unwrap(), None);
    store.save_applied_config(b"x", 1, 1).unwrap();
    assert_eq!(store.applied_config().unwrap().unwrap().raw, b"x");
}

#[test]
fn a_new_file_runs_the_same_migrations_as_an_old_one() {
    let t = TempStore::new();
    let store = Store::open_with_schema(&t.path, &SCHEMA_V3).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    drop(store);
    assert!(
        has_table(&t.path, "notes_v3"),
        "created at v1, then drop_dead_tables and add_notes ran"
    );
    assert!(!has_table(&t.path, "active_apps"));
}

#[test]
fn failing_migration_commits_nothing() {
    let t = TempStore::new();
    write_v0_file(&t.path);
    let err = Store::open_with_schema(&t.path, &SCHEMA_V1_BROKEN).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Migration {
                name: "broken",
                from: 0,
                to: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("app-2 is malformed"), "{err}");
    assert_eq!(read_version(&t.path), 0);
    assert!(has_table(&t.path, "apps_v0"));
    assert!(!has_table(&t.path, "app_records"));
    // a fixed binary still migrates it
    let store = Store::open_with_schema(&t.path, &SCHEMA_V1_FROM_V0).unwrap();
    assert_eq!(store.app_records::<Rec>().unwrap().len(), 2);
}

#[test]
fn old_file_without_a_migration_is_refused() {
    let t = TempStore::new();
    write_v0_file(&t.path);
    let err = Store::open(&t.path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::MissingMigration {
                from: 0,
                target: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(read_version(&t.path), 0);
}

#[test]
fn forward_steps_chain_in_order() {
    let t = TempStore::new();
    drop(t.open());
    let store = Store::open_with_schema(&t.path, &SCHEMA_V4).unwrap();
    assert_eq!(store.schema_version().unwrap(), 4);
    drop(store);
    let db = Database::create(&t.path).unwrap();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(LOG).unwrap();
    let steps: Vec<String> = table
        .iter()
        .unwrap()
        .map(|r| r.unwrap().1.value().to_string())
        .collect();
    assert_eq!(steps, ["2->3", "3->4"]);
}

#[test]
fn one_step_rollback_lets_the_older_binary_open_the_file() {
    let t = TempStore::new();
    t.open().put_app_record("a", &"kept").unwrap();
    let store = Store::open_with_schema(&t.path, &SCHEMA_V3).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    drop(store);
    assert!(has_table(&t.path, "notes_v3"));

    assert_eq!(Store::roll_back_schema(&t.path, &SCHEMA_V3).unwrap(), 2);
    assert!(!has_table(&t.path, "notes_v3"));
    let store = t.open();
    assert_eq!(store.schema_version().unwrap(), 2);
    assert_eq!(store.app_record::<String>("a").unwrap().unwrap(), "kept");
}

#[test]
fn rollback_is_refused_without_a_hook_or_at_the_wrong_version() {
    let t = TempStore::new();
    drop(t.open());
    let err = Store::roll_back_schema(&t.path, &SCHEMA_V2_NO_BACKWARD).unwrap_err();
    assert!(matches!(err, StoreError::Rollback { .. }), "{err}");
    assert!(err.to_string().contains("no backward migration"), "{err}");
    // file is at 2, the hook starts at 3
    let err = Store::roll_back_schema(&t.path, &SCHEMA_V3).unwrap_err();
    assert!(
        err.to_string().contains("file is at schema version 2"),
        "{err}"
    );
    assert_eq!(read_version(&t.path), 2);
}

#[test]
fn file_with_tables_but_no_version_is_refused() {
    let t = TempStore::new();
    {
        let db = Database::create(&t.path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(LEGACY_APPS)
            .unwrap()
            .insert("x", "y")
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&t.path).unwrap_err();
    assert!(matches!(err, StoreError::Unversioned { .. }), "{err}");
    assert!(err.to_string().contains("apps_v0"), "{err}");
}

#[test]
fn a_second_open_of_the_same_file_is_refused() {
    let t = TempStore::new();
    let _first = t.open();
    let err = Store::open(&t.path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}
