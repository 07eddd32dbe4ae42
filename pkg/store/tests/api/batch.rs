use outpost_store::{Batch, StoreError, MAX_CONFIG_BYTES};

use crate::TempStore;

#[test]
fn one_batch_writes_config_and_records() {
    let t = TempStore::new();
    let store = t.open();
    store.put_app_record("old", &"old").unwrap();

    let batch = Batch::new()
        .config(b"gen-9".to_vec(), 9, 900)
        .put("a", &"rec-a")
        .unwrap()
        .put("b", &"rec-b")
        .unwrap()
        .remove("old");
    assert_eq!(batch.len(), 4);
    store.commit(batch).unwrap();
    drop(store);

    let store = t.open();
    let cp = store.applied_config().unwrap().unwrap();
    assert_eq!(
        (cp.raw.as_slice(), cp.generation, cp.saved_ms),
        (&b"gen-9"[..], 9, 900)
    );
    let records = store.app_records::<String>().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records["a"], "rec-a");
    assert_eq!(store.app_record::<String>("old").unwrap(), None);
}

#[test]
fn later_calls_in_a_batch_win() {
    let t = TempStore::new();
    let store = t.open();
    store
        .commit(
            Batch::new()
                .put("x", &1)
                .unwrap()
                .remove("x")
                .remove("y")
                .put("y", &2)
                .unwrap()
                .config(b"first".to_vec(), 1, 1)
                .config(b"second".to_vec(), 2, 2),
        )
        .unwrap();
    assert_eq!(store.app_record::<u32>("x").unwrap(), None);
    assert_eq!(store.app_record::<u32>("y").unwrap(), Some(2));
    assert_eq!(store.applied_config().unwrap().unwrap().raw, b"second");
}

#[test]
fn a_refused_batch_writes_nothing() {
    let t = TempStore::new();
    let store = t.open();
    store.save_applied_config(b"kept", 1, 1).unwrap();
    let err = store
        .commit(Batch::new().put("a", &"new").unwrap().config(
            vec![0u8; MAX_CONFIG_BYTES + 1],
            2,
            2,
        ))
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    let err = store
        .commit(Batch::new().put("a", &"new").unwrap().remove(""))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
    assert_eq!(store.applied_config().unwrap().unwrap().raw, b"kept");
    assert_eq!(store.app_record::<String>("a").unwrap(), None);
}

#[test]
fn empty_batch_is_fine() {
    let t = TempStore::new();
    let store = t.open();
    let batch = Batch::new();
    assert!(batch.is_empty());
    store.commit(batch).unwrap();
    assert_eq!(store.applied_config().unwrap(), None);
}

#[test]
fn appended_batches_commit_together_in_order() {
    let t = TempStore::new();
    let store = t.open();
    let a = Batch::new().put("a", &"rec-a").unwrap().remove("c");
    let b = Batch::new()
        .put("a", &"later")
        .unwrap()
        .put("b", &"rec-b")
        .unwrap();
    let batch = Batch::new().append(a).append(b);
    assert_eq!(batch.len(), 4);
    store.commit(batch).unwrap();
    let records = store.app_records::<String>().unwrap();
    assert_eq!(records["a"], "later", "the appended batch's write wins");
    assert_eq!(records["b"], "rec-b");
}
