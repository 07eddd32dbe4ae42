//! `kill -9` at every step of the converter, then a normal run: the result
//! must equal an uninterrupted run. The test re-executes its own binary as
//! the victim (test `victim`), which SIGKILLs itself at the chosen step.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{store_path, tree, Device};
use outpost_store::Store;
use outpost_upgradeconverter::{run, Context, OpenedStore, HANDLERS};

const ROOT_ENV: &str = "OUTPOST_TEST_CONVERT_ROOT";
const CRASH_ENV: &str = "OUTPOST_TEST_CRASH_AT";

/// Kills the process at the `n`th occurrence of the step named in
/// `OUTPOST_TEST_CRASH_AT` (`step` or `step@n`).
fn crash_hook(step: &str) {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let want = std::env::var(CRASH_ENV).unwrap_or_default();
    let (name, n) = match want.split_once('@') {
        Some((s, n)) => (s.to_owned(), n.parse::<usize>().unwrap()),
        None => (want, 1),
    };
    if step == name && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == n {
        nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    }
}

/// Not a test of its own: the child process the crash test kills (ignored,
/// so it is not counted as a passing test; the crash test runs it with
/// `--ignored`).
#[test]
#[ignore = "child process of the crash test"]
fn victim() {
    let Ok(root) = std::env::var(ROOT_ENV) else {
        return;
    };
    let layout = outpost_runtime::Layout::new(root);
    let s = OpenedStore::open(&store_path(&layout), false).unwrap();
    let mut ctx = Context::new(layout, &s.store);
    ctx.on_step = crash_hook;
    run(&ctx, false);
    panic!("step {:?} was never reached", std::env::var(CRASH_ENV));
}

fn normal_run(d: &Device) -> outpost_upgradeconverter::Report {
    let s = OpenedStore::open(&store_path(&d.layout), false).unwrap();
    run(&Context::new(d.layout.clone(), &s.store), false)
}

#[test]
fn kill_at_every_step_then_rerun_reaches_the_same_state() {
    let reference = Device::old();
    assert!(!normal_run(&reference).failed());
    let want = tree(reference.dir.path());
    let steps = [
        "migrateStoreSchema:before-mark",
        "moveToUserContainerd:before-rename",
        "moveToUserContainerd:before-mark",
        "convertPersistVolumes:before-copy",
        "convertPersistVolumes:copied-entry@1",
        "convertPersistVolumes:copied-entry@3",
        "convertPersistVolumes:copied-entry@6",
        "convertPersistVolumes:before-snapshot-id",
        "convertPersistVolumes:before-rename",
        "convertPersistVolumes:before-remove-old",
        "convertPersistVolumes:before-snapshot-id@2",
        "convertPersistVolumes:before-rename@2",
        "convertPersistVolumes:before-remove-old@2",
        "convertPersistVolumes:before-mark",
    ];
    for step in steps {
        let d = Device::old();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "victim",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROOT_ENV, d.dir.path())
            .env(CRASH_ENV, step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "victim was not killed at {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = normal_run(&d);
        assert!(!r.failed(), "after a kill at {step}: {r}");
        assert_eq!(tree(d.dir.path()), want, "after a kill at {step}");
        let again = normal_run(&d);
        assert!(!again.changed(), "after a kill at {step}: {again}");
        let store = Store::open(&store_path(&d.layout)).unwrap();
        for h in HANDLERS {
            assert!(store.handler_done(h.name).unwrap().is_some());
        }
    }
}
