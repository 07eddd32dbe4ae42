use outpost_store::{StoreError, MAX_KEY_BYTES};

use crate::TempStore;

#[test]
fn handler_done_records_the_last_run() {
    let t = TempStore::new();
    {
        let store = t.open();
        assert_eq!(store.handler_done("convertPersistVolumes").unwrap(), None);
        store
            .mark_handler_done("convertPersistVolumes", 100)
            .unwrap();
        store
            .mark_handler_done("convertPersistVolumes", 200)
            .unwrap();
        store
            .mark_handler_done("moveToUserContainerd", 150)
            .unwrap();
    }
    let store = t.open();
    assert_eq!(
        store.handler_done("convertPersistVolumes").unwrap(),
        Some(200)
    );
    assert_eq!(
        store.handler_done("moveToUserContainerd").unwrap(),
        Some(150)
    );
    assert_eq!(store.handler_done("other").unwrap(), None);
}

#[test]
fn handler_names_are_bounded() {
    let t = TempStore::new();
    let store = t.open();
    let err = store
        .mark_handler_done(&"h".repeat(MAX_KEY_BYTES + 1), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidKey {
                kind: "handler name",
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        store.mark_handler_done("", 1),
        Err(StoreError::InvalidKey { .. })
    ));
}
