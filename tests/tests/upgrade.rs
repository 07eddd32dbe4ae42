//! The upgrade converter end to end: an app left by an "old" agent (old
//! container dir name, a containerd snapshot named after it with a file
//! written inside) keeps its data through `outpostd upgrade-convert` and the
//! agent start that follows; the converter is idempotent, its dry run
//! changes nothing, an existing destination is left alone, and killing the
//! real `outpostd upgrade-convert` process at random moments loses nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use containerd_client::services::v1::snapshots::{MountsRequest, PrepareSnapshotRequest};
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::volume::SNAPSHOT_ID_FILE;
use outpost_runtime::{labels, lease::Lease, mount, Layout, Runtime, SNAPSHOTTER};
use outpost_tests::agent::{app_yaml, AgentEnv};
use outpost_tests::{image_dir, workspace_bin, Rng};

const T: Duration = Duration::from_secs(60);
const SHA: &str = "9c1d7e4a5b";
const MARKER: &str = "written by the old agent\n";

fn convert(root: &Path, dry_run: bool) -> Output {
    let mut cmd = Command::new(workspace_bin("outpostd"));
    cmd.arg("upgrade-convert").arg("--root").arg(root);
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = cmd.env("RUST_LOG", "warn").output().unwrap();
    eprintln!(
        "upgrade-convert{}:\n{}{}",
        if dry_run { " --dry-run" } else { "" },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn prepared(layout: &Layout) -> PathBuf {
    layout.persist().join("runx/pods/prepared")
}

/// Every path under `<root>/persist` outside containerd's root and the
/// state database, with file contents: what the converter may touch.
fn tree(root: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<(String, String)>) {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        if rel.starts_with("persist/status") || rel.starts_with("persist/vault/containerd") {
            return;
        }
        let m = std::fs::symlink_metadata(p).unwrap();
        if m.is_dir() {
            out.push((rel, "dir".into()));
            for e in std::fs::read_dir(p).unwrap() {
                walk(root, &e.unwrap().path(), out);
            }
        } else {
            out.push((
                rel,
                String::from_utf8_lossy(&std::fs::read(p).unwrap()).into(),
            ));
        }
    }
    let mut out = Vec::new();
    walk(root, &root.join("persist"), &mut out);
    out.sort();
    out
}

/// Sets up what an old agent left: image imported, writable snapshot named
/// after the old dir with `MARKER` written inside, the old dir itself.
async fn old_agent_app(layout: &Layout, uuid: &str) -> String {
    let old_name = format!("{SHA}-{uuid}");
    let opts = InstanceOptions::with_log_file(layout.root().join("containerd-old.log"));
    let (instance, client) = UserInstance::start(layout, opts).await.unwrap();
    let rt = Runtime::new(client.clone(), layout.clone());
    let img = rt
        .import_layout(&image_dir("sh"), "sh:latest")
        .await
        .unwrap();
    let lease = Lease::create(&client, "old-agent").await.unwrap();
    let mut l = HashMap::new();
    l.insert(labels::GC_ROOT.to_owned(), "true".to_owned());
    client
        .snapshots()
        .prepare(client.req_leased(
            PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: old_name.clone(),
                parent: img.chain_id.clone(),
                labels: l,
            },
            lease.id(),
        ))
        .await
        .unwrap();
    lease.delete(&client).await.unwrap();
    let mounts = client
        .snapshots()
        .mounts(client.req(MountsRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: old_name.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .mounts;
    let m = layout.root().join("old-mnt");
    std::fs::create_dir_all(&m).unwrap();
    mount::mount_all(&mounts, &m).unwrap();
    std::fs::write(m.join("upgrade-marker"), MARKER).unwrap();
    mount::unmount(&m).unwrap();
    instance.kill().await;

    let dir = prepared(layout).join(&old_name);
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(
        dir.join("image-config.json"),
        serde_json::to_vec(&img.config).unwrap(),
    )
    .unwrap();
    old_name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_app_keeps_its_snapshot_and_data_through_the_conversion() {
    let mut env = AgentEnv::new();
    let uuid = env.uuid(1);
    let layout = env.layout.clone();
    let old_name = old_agent_app(&layout, &uuid).await;
    let old_dir = prepared(&layout).join(&old_name);

    // The old agent's checkpoint names the app; the config file says the same.
    let yaml = format!(
        "generation: 5\napps:\n{}",
        app_yaml(&uuid, "veteran", 1, "sh", "")
    );
    std::fs::create_dir_all(layout.status_dir()).unwrap();
    {
        let store = outpost_store::Store::open(&layout.status_dir().join("outpost.redb")).unwrap();
        store.save_applied_config(yaml.as_bytes(), 5, 1).unwrap();
    }
    env.write_config(&yaml);

    // Dry run: reports, changes nothing (not even the store file).
    let before = tree(layout.root());
    let db = std::fs::read(layout.status_dir().join("outpost.redb")).unwrap();
    let out = convert(layout.root(), true);
    assert!(out.status.success());
    assert!(stdout(&out).contains("would move"), "{}", stdout(&out));
    assert_eq!(tree(layout.root()), before);
    assert_eq!(
        std::fs::read(layout.status_dir().join("outpost.redb")).unwrap(),
        db
    );

    // The conversion.
    let out = convert(layout.root(), false);
    assert!(out.status.success());
    let new_dir = layout.volumes().join(format!("{uuid}#0.container"));
    assert!(!old_dir.exists(), "old dir removed");
    assert_eq!(
        std::fs::read(new_dir.join(SNAPSHOT_ID_FILE)).unwrap(),
        old_name.as_bytes(),
        "snapshotid.txt holds the old basename, verbatim"
    );

    // Again: nothing changes.
    let converted = tree(layout.root());
    let out = convert(layout.root(), false);
    assert!(out.status.success());
    assert!(!stdout(&out).contains(": changed"), "{}", stdout(&out));
    assert_eq!(tree(layout.root()), converted);

    // The agent starts the app on its old snapshot, data intact.
    env.start_agent();
    env.wait_running(&["veteran"], T);
    let (code, out, err) = env.outpost(&["exec", "veteran", "--", "cat", "/upgrade-marker"]);
    assert_eq!((code, out.as_str()), (0, MARKER), "{err}");
    let rt = env.runtime().await;
    let app = rt
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.task_id.starts_with(&uuid))
        .unwrap();
    assert_eq!(app.volume_dir, new_dir);
    assert!(!old_dir.exists());
    env.teardown().await;
}

/// No `upgrade-convert` by hand: the agent converts at start, before the
/// user containerd and the apps start. The old containerd root is at the
/// old place too (`/persist/containerd`), so both handlers must run first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_start_converts_before_any_app_starts() {
    let mut env = AgentEnv::new();
    let uuid = env.uuid(1);
    let layout = env.layout.clone();
    let old_name = old_agent_app(&layout, &uuid).await;
    std::fs::rename(layout.user_root(), layout.persist().join("containerd")).unwrap();
    let yaml = format!(
        "generation: 2\napps:\n{}",
        app_yaml(&uuid, "veteran", 1, "sh", "")
    );
    std::fs::create_dir_all(layout.status_dir()).unwrap();
    {
        let store = outpost_store::Store::open(&layout.status_dir().join("outpost.redb")).unwrap();
        store.save_applied_config(yaml.as_bytes(), 2, 1).unwrap();
    }
    env.write_config(&yaml);
    env.start_agent();
    env.wait_running(&["veteran"], T);
    let (code, out, err) = env.outpost(&["exec", "veteran", "--", "cat", "/upgrade-marker"]);
    assert_eq!((code, out.as_str()), (0, MARKER), "{err}");
    assert!(!prepared(&layout).join(&old_name).exists());
    assert!(!layout.persist().join("containerd").exists());
    let new_dir = layout.volumes().join(format!("{uuid}#0.container"));
    assert_eq!(
        std::fs::read(new_dir.join(SNAPSHOT_ID_FILE)).unwrap(),
        old_name.as_bytes()
    );
    let log = env.agent_log();
    assert!(log.contains("upgrade conversion"), "{log}");
    let store_done = {
        env.stop_agent();
        let store = outpost_store::Store::open(&layout.status_dir().join("outpost.redb")).unwrap();
        store.handler_done("convertPersistVolumes").unwrap()
    };
    assert!(store_done.is_some());
    env.start_agent();
    env.wait_running(&["veteran"], T);
    env.teardown().await;
}

#[test]
fn existing_destination_is_left_untouched_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let uuid = "5d2c7b1a-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
    let old = prepared(&layout).join(format!("{SHA}-{uuid}"));
    std::fs::create_dir_all(old.join("rootfs")).unwrap();
    std::fs::write(old.join("image-config.json"), "old").unwrap();
    let dest = layout.volumes().join(format!("{uuid}#0.container"));
    std::fs::create_dir_all(dest.join("rootfs")).unwrap();
    std::fs::write(dest.join("image-config.json"), "new").unwrap();
    let before = tree(dir.path());
    let out = convert(dir.path(), false);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.contains("already exists") && text.contains(&dest.display().to_string()),
        "{text}"
    );
    assert_eq!(
        tree(dir.path()),
        before,
        "nothing moved, nothing overwritten"
    );
}

/// An old layout with enough data that converting it takes a while.
fn bulky_old_layout(root: &Path) {
    let layout = Layout::new(root);
    for i in 0..12u32 {
        let uuid = format!("{i:08x}-aaaa-4bbb-8ccc-000000000000");
        let d = prepared(&layout).join(format!("{SHA}-{uuid}#{}", i % 3));
        std::fs::create_dir_all(d.join("rootfs")).unwrap();
        std::fs::create_dir_all(d.join("data")).unwrap();
        std::fs::write(d.join("image-config.json"), format!("{{\"i\":{i}}}")).unwrap();
        for f in 0..20u32 {
            std::fs::write(
                d.join(format!("data/f{f}")),
                format!("{i}-{f}-").repeat(20_000),
            )
            .unwrap();
        }
    }
    let ctd = layout.persist().join("containerd");
    std::fs::create_dir_all(&ctd).unwrap();
    std::fs::write(ctd.join("meta.db"), "meta").unwrap();
}

#[test]
fn kill_9_at_random_moments_then_a_normal_run_reaches_the_same_state() {
    let reference = tempfile::tempdir().unwrap();
    bulky_old_layout(reference.path());
    let t0 = std::time::Instant::now();
    assert!(convert(reference.path(), false).status.success());
    let full = t0.elapsed();
    let want = tree(reference.path());
    assert!(!want.iter().any(|(p, _)| p.contains("runx/pods/prepared/")));

    let mut rng = Rng::new(std::process::id() as u64 ^ 0x5eed);
    let mut interrupted = 0;
    // The reference time can include a long `sync` stall on a busy host:
    // halve the window whenever a run finished before its kill.
    let mut window = full.as_millis() as u64 * 4 / 5 + 1;
    // At least 6 attempts, and more (up to 20) until 4 runs were cut off:
    // how often a kill lands mid-run depends on the machine's speed.
    for attempt in 0..20 {
        if attempt >= 6 && interrupted >= 4 {
            break;
        }
        // Each attempt: a fresh old layout, two runs killed at random
        // moments, then a normal run.
        let dir = tempfile::tempdir().unwrap();
        bulky_old_layout(dir.path());
        for _ in 0..2 {
            let mut child = Command::new(workspace_bin("outpostd"))
                .arg("upgrade-convert")
                .arg("--root")
                .arg(dir.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.below(window)));
            let _ = child.kill(); // SIGKILL
            if child.wait().unwrap().code().is_none() {
                interrupted += 1;
            } else {
                window = (window / 2).max(5);
            }
        }
        let out = convert(dir.path(), false);
        assert!(out.status.success(), "attempt {attempt}");
        assert_eq!(tree(dir.path()), want, "attempt {attempt}");
        assert!(
            dir.path().join("persist/vault/containerd/meta.db").exists(),
            "attempt {attempt}"
        );
        let again = convert(dir.path(), false);
        assert!(!stdout(&again).contains(": changed"), "attempt {attempt}");
    }
    eprintln!("{interrupted} runs were killed mid-way (a full run takes {full:?})");
    assert!(
        interrupted >= 3,
        "too few runs were interrupted to mean anything"
    );
}
