use outpost_store::{Batch, CounterKind, StoreError, MAX_APP_RECORD_BYTES, MAX_KEY_BYTES};
use serde::{Deserialize, Serialize};

use crate::TempStore;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rec {
    phase: String,
    restarts: u32,
}

fn rec(phase: &str, restarts: u32) -> Rec {
    Rec {
        phase: phase.into(),
        restarts,
    }
}

#[test]
fn put_and_read_one_record() {
    let t = TempStore::new();
    let store = t.open();
    assert_eq!(store.app_record::<Rec>("a").unwrap(), None);
    store.put_app_record("a", &rec("running", 1)).unwrap();
    assert_eq!(
        store.app_record::<Rec>("a").unwrap(),
        Some(rec("running", 1))
    );
    store.put_app_record("a", &rec("halted", 2)).unwrap();
    assert_eq!(
        store.app_record::<Rec>("a").unwrap(),
        Some(rec("halted", 2))
    );
}

#[test]
fn app_records_lists_all_by_uuid_and_survives_reopen() {
    let t = TempStore::new();
    {
        let store = t.open();
        store.put_app_record("c", &rec("c", 3)).unwrap();
        store.put_app_record("a", &rec("a", 1)).unwrap();
        store.put_app_record("b", &rec("b", 2)).unwrap();
    }
    let all = t.open().app_records::<Rec>().unwrap();
    let keys: Vec<_> = all.keys().cloned().collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(all["b"], rec("b", 2));
    assert!(t.open().app_records::<Rec>().is_ok());
}

#[test]
fn empty_store_lists_no_records() {
    let t = TempStore::new();
    assert!(t.open().app_records::<Rec>().unwrap().is_empty());
}

#[test]
fn remove_app_record_forgets_everything_about_the_app() {
    let t = TempStore::new();
    let store = t.open();
    for uuid in ["gone", "kept"] {
        store
            .commit(Batch::new().put(uuid, &rec(uuid, 0)).unwrap())
            .unwrap();
        store.bump_local_counter(uuid, CounterKind::Purge).unwrap();
    }
    store.remove_app_record("gone").unwrap();
    assert_eq!(store.app_record::<Rec>("gone").unwrap(), None);
    assert_eq!(store.local_counters("gone").unwrap(), (0, 0));
    assert_eq!(
        store.app_record::<Rec>("kept").unwrap(),
        Some(rec("kept", 0))
    );
    assert_eq!(store.local_counters("kept").unwrap(), (0, 1));
    store.remove_app_record("never-existed").unwrap();
}

#[test]
fn record_that_no_longer_decodes_names_its_uuid() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Other {
        required_field: u64,
    }
    let t = TempStore::new();
    let store = t.open();
    store.put_app_record("app-7", &rec("x", 0)).unwrap();
    let err = store.app_record::<Other>("app-7").unwrap_err();
    assert!(matches!(&err, StoreError::Decode { key, table: "app_records", .. } if key == "app-7"));
    assert!(err.to_string().contains("\"app-7\""), "{err}");
    assert!(matches!(
        store.app_records::<Other>(),
        Err(StoreError::Decode { .. })
    ));
}

#[test]
fn record_over_one_mib_is_refused_and_nothing_written() {
    let t = TempStore::new();
    let store = t.open();
    let fits = "x".repeat(MAX_APP_RECORD_BYTES - 2); // plus two quotes
    store.put_app_record("a", &fits).unwrap();
    let big = "x".repeat(MAX_APP_RECORD_BYTES - 1);
    let err = store.put_app_record("b", &big).unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { max, .. } if max == MAX_APP_RECORD_BYTES),
        "{err}"
    );
    assert!(err.to_string().contains("app record \"b\""), "{err}");
    assert_eq!(store.app_record::<String>("b").unwrap(), None);
    assert_eq!(
        store.app_record::<String>("a").unwrap().unwrap().len(),
        MAX_APP_RECORD_BYTES - 2
    );
}

#[test]
fn record_that_cannot_be_json_is_an_encode_error() {
    use std::collections::HashMap;
    let t = TempStore::new();
    let store = t.open();
    let mut bad: HashMap<(u8, u8), u8> = HashMap::new(); // tuple keys are not JSON object keys
    bad.insert((1, 2), 3);
    let err = store.put_app_record("a", &bad).unwrap_err();
    assert!(
        matches!(&err, StoreError::Encode { uuid, .. } if uuid == "a"),
        "{err}"
    );
}

#[test]
fn empty_and_overlong_uuids_are_refused() {
    let t = TempStore::new();
    let store = t.open();
    let err = store.put_app_record("", &1).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidKey {
                kind: "app UUID",
                ..
            }
        ),
        "{err}"
    );
    let long = "u".repeat(MAX_KEY_BYTES + 1);
    assert!(matches!(
        store.put_app_record(&long, &1),
        Err(StoreError::InvalidKey { .. })
    ));
    assert!(matches!(
        store.remove_app_record(""),
        Err(StoreError::InvalidKey { .. })
    ));
    store
        .put_app_record(&"u".repeat(MAX_KEY_BYTES), &1)
        .unwrap();
}
