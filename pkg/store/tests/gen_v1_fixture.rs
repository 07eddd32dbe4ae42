//! Writes `tests/fixtures/v1_agent.redb` with the schema-version-1 API, the
//! way the agent of that version wrote it (one `Batch` per decision, each
//! record with its `.active(uuid, was_active)` marker). Run once, by hand:
//! `OUTPOST_WRITE_V1_FIXTURE=1 cargo test -p outpost-store --test gen_v1_fixture`.

use outpost_store::{Batch, CounterKind, Store};
use serde_json::json;

#[test]
fn write_v1_fixture() {
    if std::env::var_os("OUTPOST_WRITE_V1_FIXTURE").is_none() {
        return;
    }
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1_agent.redb");
    let _ = std::fs::remove_file(&path);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 1);
    let apps = [
        ("11111111-1111-4111-8111-111111111111", true, Some(3u64)),
        ("22222222-2222-4222-8222-222222222222", false, Some(0)),
        ("33333333-3333-4333-8333-333333333333", true, Some(0)),
        ("44444444-4444-4444-8444-444444444444", false, None),
    ];
    // decision 1: config generation 4, every app
    let mut batch = Batch::new().config(br#"{"generation":4}"#.to_vec(), 4, 1_700_000_000_000);
    for (uuid, was_active, purge) in apps {
        let applied = purge.map(
            |p| json!({"uuid": uuid, "version": "1", "purge_counter": p, "restart_counter": 1}),
        );
        let rec = json!({"applied": applied, "restarts": 2, "was_active": was_active});
        batch = batch.put(uuid, &rec).unwrap().active(uuid, was_active);
        if let Some(p) = purge {
            batch = batch.applied_purge_counter(uuid, p);
        }
    }
    store.commit(batch).unwrap();
    // decision 2: an app that left the config
    let gone = "55555555-5555-4555-8555-555555555555";
    store
        .commit(
            Batch::new()
                .put(gone, &json!({"was_active": true}))
                .unwrap()
                .active(gone, true),
        )
        .unwrap();
    store.commit(Batch::new().remove(gone)).unwrap();
    store.promote_known_good(1_700_000_600_000).unwrap();
    store
        .bump_local_counter(apps[0].0, CounterKind::Restart)
        .unwrap();
    store
        .bump_local_counter(apps[1].0, CounterKind::Purge)
        .unwrap();
    store
        .mark_handler_done("convertPersistVolumes", 1_700_000_000_001)
        .unwrap();
    assert_eq!(store.active_apps().unwrap().len(), 2);
}
