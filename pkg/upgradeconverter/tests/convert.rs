//! The handlers on an old-layout tree: conversion, idempotence, dry run,
//! existing destinations, a failing handler. No containerd needed.

mod common;

use common::{store_path, tree, Device, APP1, APP2, SHA};
use outpost_runtime::volume::snapshot_id;
use outpost_store::Store;
use outpost_upgradeconverter::{run, run_handlers, Change, Context, Handler, OpenedStore, Run};

fn convert(d: &Device, dry_run: bool) -> outpost_upgradeconverter::Report {
    let s = OpenedStore::open(&store_path(&d.layout), dry_run).unwrap();
    let ctx = Context::new(d.layout.clone(), &s.store).with_schema_before(s.schema_before);
    let r = run(&ctx, dry_run);
    eprintln!("{r}");
    r
}

#[test]
fn converts_old_layout_and_keeps_snapshot_ids() {
    let d = Device::old();
    let r = convert(&d, false);
    assert!(!r.failed(), "{r}");
    assert!(r.changed());
    let v1 = d.volume(APP1, 0);
    let v2 = d.volume(APP2, 2);
    assert_eq!(snapshot_id(&v1), format!("{SHA}-{APP1}"));
    assert_eq!(snapshot_id(&v2), format!("{SHA}-{APP2}#2"));
    assert_eq!(
        std::fs::read_to_string(v2.join("extra/deep/file")).unwrap(),
        "two"
    );
    assert_eq!(
        std::fs::read_link(v1.join("extra/link")).unwrap(),
        std::path::Path::new("deep/file")
    );
    assert!(v1.join("rootfs").is_dir());
    assert!(!d.old_dir(&format!("{SHA}-{APP1}")).exists());
    assert!(!d.old_dir(&format!("{SHA}-{APP2}#2")).exists());
    // Stray entries are left and reported.
    assert!(d.old_dir("README").exists() && d.old_dir("not-an-app").exists());
    let h = r.handler("convertPersistVolumes").unwrap();
    assert!(h
        .changes
        .iter()
        .any(|c| matches!(c, Change::Skipped { .. })));
    assert!(
        h.changes.iter().any(|c| matches!(c, Change::Note(n) if n.contains(APP2) && n.contains("not in the checkpointed config"))),
        "{r}"
    );
    // containerd root moved.
    assert!(d
        .layout
        .user_root()
        .join("io.containerd.content.v1.content/blob")
        .exists());
    assert!(!d.layout.persist().join("containerd").exists());
    // Every handler recorded.
    let store = Store::open(&store_path(&d.layout)).unwrap();
    for h in outpost_upgradeconverter::HANDLERS {
        assert!(store.handler_done(h.name).unwrap().is_some(), "{}", h.name);
    }
}

#[test]
fn second_run_changes_nothing() {
    let d = Device::old();
    convert(&d, false);
    let before = tree(d.dir.path());
    let r = convert(&d, false);
    assert!(!r.changed() && !r.failed(), "{r}");
    assert_eq!(tree(d.dir.path()), before);
    assert!(r.handlers.iter().all(|h| h.previously_done_ms.is_some()));
}

#[test]
fn dry_run_changes_nothing_and_reports_what_would() {
    let d = Device::old();
    let before = tree(d.dir.path());
    let store_bytes = std::fs::read(store_path(&d.layout)).unwrap();
    let r = convert(&d, true);
    assert!(r.changed() && !r.failed(), "{r}");
    let text = r.to_string();
    assert!(
        text.contains("would move") && text.contains("dry run"),
        "{text}"
    );
    assert_eq!(tree(d.dir.path()), before);
    assert_eq!(std::fs::read(store_path(&d.layout)).unwrap(), store_bytes);
    // Dry run on a device without a store creates none.
    let e = tempfile::tempdir().unwrap();
    let layout = outpost_runtime::Layout::new(e.path());
    let s = OpenedStore::open(&store_path(&layout), true).unwrap();
    run(&Context::new(layout.clone(), &s.store), true);
    drop(s);
    assert!(!store_path(&layout).exists());
}

#[test]
fn existing_destination_is_left_untouched_and_reported() {
    let d = Device::old();
    let v1 = d.volume(APP1, 0);
    std::fs::create_dir_all(v1.join("rootfs")).unwrap();
    std::fs::write(v1.join("mine"), "keep").unwrap();
    let vault_ctd = d.layout.user_root();
    std::fs::create_dir_all(&vault_ctd).unwrap();
    std::fs::write(vault_ctd.join("new"), "x").unwrap();
    let r = convert(&d, false);
    assert!(!r.failed(), "{r}");
    let old1 = d.old_dir(&format!("{SHA}-{APP1}"));
    assert!(old1.join("extra/deep/file").exists(), "old dir kept");
    assert_eq!(std::fs::read_to_string(v1.join("mine")).unwrap(), "keep");
    assert!(!v1.join("snapshotid.txt").exists());
    let h = r.handler("convertPersistVolumes").unwrap();
    assert!(h
        .changes
        .contains(&Change::DestinationExists { from: old1, to: v1 }));
    let c = r.handler("moveToUserContainerd").unwrap();
    assert!(matches!(c.changes[..], [Change::DestinationExists { .. }]));
    assert!(d
        .layout
        .persist()
        .join("containerd/io.containerd.content.v1.content/blob")
        .exists());
    assert!(!vault_ctd.join("io.containerd.content.v1.content").exists());
    // The other app still converted.
    assert!(d.volume(APP2, 2).join("snapshotid.txt").exists());
    assert!(r.to_string().contains("already exists"));
}

#[test]
fn a_failing_handler_is_reported_and_the_next_runs() {
    fn fails(_: &Context<'_>, r: &mut Run) {
        r.errors.push(outpost_upgradeconverter::ConvertError::io(
            "testing",
            "/nowhere",
            std::io::Error::other("boom"),
        ));
    }
    fn works(_: &Context<'_>, r: &mut Run) {
        r.changes.push(Change::Note("ran".into()));
    }
    let list = [
        Handler {
            name: "fails",
            description: "always fails",
            run: fails,
        },
        Handler {
            name: "works",
            description: "always works",
            run: works,
        },
    ];
    let d = Device::old();
    let store = Store::open(&store_path(&d.layout)).unwrap();
    let r = run_handlers(&Context::new(d.layout.clone(), &store), &list, false);
    assert!(r.failed());
    assert!(!r.handlers[0].ok() && r.handlers[1].ok());
    assert!(r.to_string().contains("FAILED") && r.to_string().contains("/nowhere"));
    assert!(store.handler_done("fails").unwrap().is_none());
    assert!(store.handler_done("works").unwrap().is_some());
}

#[test]
fn half_removed_old_dir_after_conversion_is_finished() {
    let d = Device::old();
    let reference = Device::old();
    convert(&reference, false);
    // Simulate a crash inside the old dir's removal: the destination is
    // complete, the old dir partly gone.
    let old1 = d.old_dir(&format!("{SHA}-{APP1}"));
    let v1 = d.volume(APP1, 0);
    std::fs::create_dir_all(d.layout.volumes()).unwrap();
    outpost_upgradeconverter::copy::copy_tree(&old1, &v1, &|| {}).unwrap();
    std::fs::write(v1.join("snapshotid.txt"), format!("{SHA}-{APP1}")).unwrap();
    std::fs::remove_dir_all(old1.join("extra")).unwrap();
    let r = convert(&d, false);
    assert!(!r.failed(), "{r}");
    assert!(!old1.exists());
    assert_eq!(tree(d.dir.path()), tree(reference.dir.path()));
}
