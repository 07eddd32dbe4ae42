use outpost_store::{CounterKind, StoreError};

use crate::TempStore;

#[test]
fn local_counters_start_at_zero_and_bump_independently() {
    let t = TempStore::new();
    let store = t.open();
    assert_eq!(store.local_counters("a").unwrap(), (0, 0));
    assert_eq!(
        store.bump_local_counter("a", CounterKind::Restart).unwrap(),
        1
    );
    assert_eq!(
        store.bump_local_counter("a", CounterKind::Restart).unwrap(),
        2
    );
    assert_eq!(
        store.bump_local_counter("a", CounterKind::Purge).unwrap(),
        1
    );
    assert_eq!(store.local_counters("a").unwrap(), (2, 1));
    assert_eq!(store.local_counters("b").unwrap(), (0, 0));
}

#[test]
fn local_counters_survive_reopen() {
    let t = TempStore::new();
    t.open()
        .bump_local_counter("a", CounterKind::Purge)
        .unwrap();
    let store = t.open();
    assert_eq!(
        store.bump_local_counter("a", CounterKind::Purge).unwrap(),
        2
    );
    assert_eq!(store.local_counters("a").unwrap(), (0, 2));
}

#[test]
fn bump_refuses_an_empty_uuid() {
    let t = TempStore::new();
    let err = t
        .open()
        .bump_local_counter("", CounterKind::Restart)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidKey { .. }), "{err}");
}
