//! Opening and atomic creation of the store file.

use outpost_store::{Store, StoreError};

use crate::TempStore;

fn staging(t: &TempStore) -> std::path::PathBuf {
    t.path.with_file_name("outpost.redb.creating")
}

#[test]
fn a_new_store_leaves_no_staging_file() {
    let t = TempStore::new();
    t.open().put_app_record("a", &1).unwrap();
    assert!(t.path.is_file());
    assert!(!staging(&t).exists());
}

#[test]
fn a_leftover_from_an_interrupted_creation_is_replaced() {
    let t = TempStore::new();
    // what redb leaves when killed mid-create: a sized file without its magic number
    std::fs::write(staging(&t), vec![0u8; 1 << 20]).unwrap();
    let store = t.open();
    assert_eq!(
        store.schema_version().unwrap(),
        outpost_store::SCHEMA_VERSION
    );
    assert!(!staging(&t).exists());
}

#[test]
fn an_empty_file_is_initialised() {
    let t = TempStore::new();
    std::fs::write(&t.path, b"").unwrap();
    let store = t.open();
    store.save_applied_config(b"x", 1, 1).unwrap();
    assert_eq!(store.applied_config().unwrap().unwrap().generation, 1);
}

#[test]
fn a_file_that_is_not_redb_is_refused_and_kept() {
    let t = TempStore::new();
    std::fs::write(&t.path, vec![0x42; 8192]).unwrap();
    let err = Store::open(&t.path).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&t.path.display().to_string()) && text.contains("Move it aside"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&t.path).unwrap(),
        vec![0x42; 8192],
        "never overwritten"
    );
}

#[test]
fn a_missing_directory_is_an_io_error_naming_it() {
    let t = TempStore::new();
    let path = t.path.with_file_name("no-such-dir").join("s.redb");
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn rollback_never_creates_a_file() {
    let t = TempStore::new();
    let err = Store::roll_back_schema(&t.path, &outpost_store::schema::CURRENT).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(!t.path.exists());
}
