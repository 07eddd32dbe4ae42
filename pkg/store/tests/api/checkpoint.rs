use outpost_store::{Checkpoint, StoreError, MAX_CONFIG_BYTES};

use crate::TempStore;

#[test]
fn fresh_store_has_no_checkpoints() {
    let t = TempStore::new();
    let store = t.open();
    assert_eq!(store.applied_config().unwrap(), None);
    assert_eq!(store.known_good_config().unwrap(), None);
}

#[test]
fn save_applied_config_round_trips_and_overwrites() {
    let t = TempStore::new();
    let store = t.open();
    store
        .save_applied_config(b"{\"generation\":1}", 1, 1000)
        .unwrap();
    assert_eq!(
        store.applied_config().unwrap(),
        Some(Checkpoint {
            raw: b"{\"generation\":1}".to_vec(),
            generation: 1,
            saved_ms: 1000
        })
    );
    store.save_applied_config(&[0, 255, 7], 2, 2000).unwrap();
    let cp = store.applied_config().unwrap().unwrap();
    assert_eq!(
        (cp.raw, cp.generation, cp.saved_ms),
        (vec![0, 255, 7], 2, 2000)
    );
}

#[test]
fn checkpoints_survive_reopen() {
    let t = TempStore::new();
    {
        let store = t.open();
        store.save_applied_config(b"cfg-5", 5, 50).unwrap();
        assert!(store.promote_known_good(60).unwrap());
    }
    let store = t.open();
    assert_eq!(store.applied_config().unwrap().unwrap().raw, b"cfg-5");
    let good = store.known_good_config().unwrap().unwrap();
    assert_eq!(
        (good.raw.as_slice(), good.generation, good.saved_ms),
        (&b"cfg-5"[..], 5, 60)
    );
}

#[test]
fn promote_known_good_without_applied_changes_nothing() {
    let t = TempStore::new();
    let store = t.open();
    assert!(!store.promote_known_good(10).unwrap());
    assert_eq!(store.known_good_config().unwrap(), None);
}

#[test]
fn promote_known_good_copies_once_then_follows_new_applied() {
    let t = TempStore::new();
    let store = t.open();
    store.save_applied_config(b"one", 1, 100).unwrap();
    assert!(store.promote_known_good(700).unwrap());
    assert!(!store.promote_known_good(800).unwrap(), "same config twice");
    assert_eq!(store.known_good_config().unwrap().unwrap().saved_ms, 700);

    store.save_applied_config(b"two", 2, 900).unwrap();
    let good = store.known_good_config().unwrap().unwrap();
    assert_eq!(
        (good.raw.as_slice(), good.generation),
        (&b"one"[..], 1),
        "not healthy yet"
    );
    assert!(store.promote_known_good(1500).unwrap());
    let good = store.known_good_config().unwrap().unwrap();
    assert_eq!(
        (good.raw.as_slice(), good.generation, good.saved_ms),
        (&b"two"[..], 2, 1500)
    );
}

#[test]
fn promote_known_good_notices_same_generation_different_bytes() {
    let t = TempStore::new();
    let store = t.open();
    store.save_applied_config(b"a", 3, 1).unwrap();
    assert!(store.promote_known_good(2).unwrap());
    store.save_applied_config(b"b", 3, 3).unwrap();
    assert!(store.promote_known_good(4).unwrap());
    assert_eq!(store.known_good_config().unwrap().unwrap().raw, b"b");
}

#[test]
fn config_at_the_limit_is_kept_and_one_byte_more_is_refused() {
    let t = TempStore::new();
    let store = t.open();
    let max = vec![b'x'; MAX_CONFIG_BYTES];
    store.save_applied_config(&max, 1, 1).unwrap();
    let too_big = vec![b'y'; MAX_CONFIG_BYTES + 1];
    let err = store.save_applied_config(&too_big, 2, 2).unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { size, max, .. } if size == MAX_CONFIG_BYTES + 1 && max == MAX_CONFIG_BYTES),
        "{err}"
    );
    assert!(
        err.to_string().contains("config document (generation 2)"),
        "{err}"
    );
    let kept = store.applied_config().unwrap().unwrap();
    assert_eq!((kept.generation, kept.raw.len()), (1, MAX_CONFIG_BYTES));
}
