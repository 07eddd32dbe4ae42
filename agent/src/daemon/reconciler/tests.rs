//! Table tests of the loop itself, through the recording driver and an
//! injected clock: waves, known-good promotion, restart backoff, the image
//! GC keep set, a download in progress while the config changes, typed
//! failures, and commands and configs taken while a pass executes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_api::{Severity, SwState};
use outpost_reconcile::FailureClass;
use outpost_store::Store;
use tokio::sync::{mpsc, watch, Notify};

use super::{Clock, Inputs, LoopOptions, Reconciler};
use crate::daemon::driver::recording::{Call, RecordingDriver};
use crate::daemon::executor::Executor;
use crate::daemon::snapshot::{Command, CounterKind, Event, LinkView, Snapshot};
use crate::daemon::source::{parse, ParsedConfig, RawConfig};

const T0: u64 = 1_800_000_000_000;
const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const C: &str = "cccccccc-0000-4000-8000-000000000003";

#[derive(Default)]
struct ManualClock(AtomicU64);

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Rig {
    r: Reconciler<RecordingDriver>,
    d: Arc<RecordingDriver>,
    clock: Arc<ManualClock>,
    inputs: Inputs,
    snap: watch::Receiver<Arc<Snapshot>>,
    store: Arc<Store>,
    events: mpsc::Sender<Event>,
    _link: watch::Sender<Option<LinkView>>,
    _configs: mpsc::Sender<ParsedConfig>,
    _dir: tempfile::TempDir,
}

/// An app entry: `(uuid, name, image, extra YAML fields)`.
fn app(uuid: &str, name: &str, image: &str, extra: &str) -> String {
    let num = u32::from(name.as_bytes()[0]);
    format!(
        "  - {{ uuid: {uuid}, version: \"1\", display_name: {name}, app_num: {num}, image: \"{image}\"{extra} }}\n"
    )
}

fn doc(generation: u64, apps: &[String]) -> String {
    format!("generation: {generation}\napps:\n{}", apps.concat())
}

impl Rig {
    fn new(images: &[&str]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
        let d = Arc::new(RecordingDriver::with_images(images));
        let clock = Arc::new(ManualClock(AtomicU64::new(T0)));
        let (snap_tx, snap) = watch::channel(Arc::new(Snapshot::initial(None, Instant::now())));
        let exec = Executor {
            driver: d.clone(),
            downloads: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let opts = LoopOptions {
            known_good_after: Duration::from_secs(60),
            image_gc_grace: Duration::from_secs(30),
            ..LoopOptions::default()
        };
        let r = Reconciler::new(exec, store.clone(), opts, clock.clone(), snap_tx).unwrap();
        let (configs_tx, configs) = mpsc::channel(8);
        let (events_tx, events) = mpsc::channel(8);
        let (link_tx, link) = watch::channel(None);
        Rig {
            r,
            d,
            clock,
            inputs: Inputs {
                configs,
                events,
                tasks: None,
                link,
            },
            snap,
            store,
            events: events_tx,
            _link: link_tx,
            _configs: configs_tx,
            _dir: dir,
        }
    }

    fn config(&mut self, text: &str) {
        let raw = RawConfig {
            bytes: text.as_bytes().to_vec(),
            origin: "test".into(),
        };
        let parsed = parse(&raw);
        self.r.take_config(ParsedConfig { raw, parsed });
    }

    /// Passes until one acts on nothing; returns the calls made.
    async fn settle(&mut self) -> Vec<Call> {
        for _ in 0..10 {
            let (acted, _) = self.r.pass(&mut self.inputs).await.unwrap();
            if !acted {
                return self.d.take_calls();
            }
        }
        panic!("the loop did not settle in 10 passes");
    }

    fn advance(&self, ms: u64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn status(&self, name: &str) -> outpost_api::AppStatus {
        self.snap
            .borrow()
            .find(name)
            .unwrap_or_else(|| panic!("no status for {name}"))
    }

    fn task(&self, uuid: &str) -> String {
        self.d
            .containers()
            .values()
            .find(|o| o.uuid == uuid)
            .map(|o| o.task_id.clone())
            .unwrap_or_else(|| panic!("no container of {uuid}"))
    }
}

fn creates(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Create(t) | Call::Restart(t) => Some(t.split('.').next().unwrap().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn teardown_first_then_returning_apps_then_new_ones() {
    let mut rig = Rig::new(&["img:1"]);
    rig.config(&doc(
        1,
        &[app(A, "a", "img:1", ""), app(C, "c", "img:1", "")],
    ));
    let calls = rig.settle().await;
    assert_eq!(creates(&calls), [A, C]);
    assert_eq!(rig.status("a").state, SwState::Running);

    // A reboot: nothing runs. The new config lists the new app first and
    // drops c: c's removal comes first, then a (running before), then b.
    rig.d.reboot();
    rig.config(&doc(
        2,
        &[app(B, "b", "img:1", ""), app(A, "a", "img:1", "")],
    ));
    let calls = rig.settle().await;
    let removal = calls
        .iter()
        .position(|c| *c == Call::RemoveLeftovers(C.into()))
        .expect("c removed");
    let order = creates(&calls);
    assert_eq!(order, [A, B], "returning app before the new one: {calls:?}");
    let first_start = calls
        .iter()
        .position(|c| matches!(c, Call::Create(_) | Call::Restart(_)))
        .unwrap();
    assert!(removal < first_start, "teardown first: {calls:?}");
}

#[tokio::test]
async fn known_good_after_a_healthy_window_only() {
    let mut rig = Rig::new(&["img:1"]);
    rig.config(&doc(1, &[app(A, "a", "img:1", "")]));
    rig.settle().await;
    assert!(rig.store.known_good_config().unwrap().is_none());
    rig.advance(59_000);
    rig.settle().await;
    assert!(
        rig.store.known_good_config().unwrap().is_none(),
        "promoted before the window"
    );
    rig.advance(2_000);
    rig.settle().await;
    let kg = rig.store.known_good_config().unwrap().expect("promoted");
    assert_eq!(kg.generation, 1);
}

#[tokio::test]
async fn a_crashing_app_restarts_with_backoff() {
    let mut rig = Rig::new(&["img:1"]);
    let always = ", restart_policy: { mode: always }";
    rig.config(&doc(1, &[app(A, "a", "img:1", always)]));
    rig.settle().await;
    let task = rig.task(A);

    // First exit: restarted at once? No — after the initial backoff.
    rig.advance(1_000);
    rig.d.exit(&task, 3);
    let calls = rig.settle().await;
    assert!(!calls.contains(&Call::Restart(task.clone())), "{calls:?}");
    let st = rig.status("a");
    assert!(st.backoff.is_some(), "backoff shown: {st:?}");
    rig.advance(9_000);
    assert!(!rig.settle().await.contains(&Call::Restart(task.clone())));
    rig.advance(1_500);
    assert!(rig.settle().await.contains(&Call::Restart(task.clone())));

    // The second exit waits twice as long.
    rig.advance(1_000);
    rig.d.exit(&task, 3);
    rig.settle().await;
    rig.advance(15_000);
    assert!(!rig.settle().await.contains(&Call::Restart(task.clone())));
    rig.advance(6_000);
    assert!(rig.settle().await.contains(&Call::Restart(task.clone())));
    assert_eq!(rig.status("a").state, SwState::Running);
}

#[tokio::test]
async fn image_gc_keeps_what_the_config_and_known_good_need() {
    // GC grace 30 s, known-good window 60 s.
    let mut rig = Rig::new(&["img:a", "img:b", "img:old"]);
    rig.config(&doc(
        1,
        &[app(A, "a", "img:a", ""), app(B, "b", "img:b", "")],
    ));
    let calls = rig.settle().await;
    let both: BTreeSet<String> = ["img:a", "img:b"].map(String::from).into();
    assert!(
        calls.contains(&Call::CollectImages(both.clone())),
        "{calls:?}"
    );
    rig.advance(61_000);
    rig.settle().await;
    assert_eq!(
        rig.store.known_good_config().unwrap().unwrap().generation,
        1
    );

    // b leaves the config. Its image stays while generation 1 is the
    // known-good rollback target, and goes once generation 2 replaces it.
    rig.config(&doc(2, &[app(A, "a", "img:a", "")]));
    let calls = rig.settle().await;
    assert!(calls.contains(&Call::RemoveLeftovers(B.into())));
    assert!(
        !calls.iter().any(|c| matches!(c, Call::CollectImages(_))),
        "grace"
    );
    rig.advance(31_000);
    let calls = rig.settle().await;
    assert!(calls.contains(&Call::CollectImages(both)), "{calls:?}");
    rig.advance(31_000);
    let calls = rig.settle().await;
    assert_eq!(
        rig.store.known_good_config().unwrap().unwrap().generation,
        2
    );
    let only_a: BTreeSet<String> = ["img:a"].map(String::from).into();
    assert!(calls.contains(&Call::CollectImages(only_a)), "{calls:?}");
}

#[tokio::test]
async fn a_download_never_holds_up_other_apps() {
    let mut rig = Rig::new(&["img:small"]);
    rig.config(&doc(1, &[app(A, "a", "big:1", "")]));
    let calls = rig.settle().await;
    assert_eq!(calls, [Call::Fetch("big:1".into())]);
    assert_eq!(rig.status("a").state, SwState::Downloading);

    // While it downloads, a config change adds b: b runs, a still waits.
    rig.config(&doc(
        2,
        &[app(A, "a", "big:1", ""), app(B, "b", "img:small", "")],
    ));
    let calls = rig.settle().await;
    assert_eq!(creates(&calls), [B], "{calls:?}");
    assert_eq!(rig.status("b").state, SwState::Running);
    assert_eq!(rig.status("a").state, SwState::Downloading);

    // The download ends: the loop is woken and a is created.
    rig.d.finish_download("big:1", Ok(()));
    tokio::time::timeout(Duration::from_secs(5), rig.r.exec.wake.notified())
        .await
        .expect("woken by the download");
    let calls = rig.settle().await;
    assert_eq!(creates(&calls), [A], "{calls:?}");
    assert_eq!(rig.status("a").state, SwState::Running);
}

#[tokio::test]
async fn permanent_failures_are_errors_at_once_transient_ones_retry() {
    let mut rig = Rig::new(&["img:1"]);
    rig.d.fail_next("create", A, FailureClass::Transient);
    rig.d.fail_next("create", B, FailureClass::Permanent);
    rig.config(&doc(
        1,
        &[app(A, "a", "img:1", ""), app(B, "b", "img:1", "")],
    ));
    rig.settle().await;
    let (a, b) = (rig.status("a"), rig.status("b"));
    let (ea, eb) = (a.error.expect("a's error"), b.error.expect("b's error"));
    assert!(ea.message.contains("scripted failure"), "{ea:?}");
    assert_ne!(
        ea.severity,
        Severity::Error,
        "a transient failure escalates"
    );
    assert_eq!(eb.severity, Severity::Error, "{eb:?}");
    // The retry after the backoff succeeds.
    rig.advance(10_001);
    rig.settle().await;
    assert_eq!(rig.status("a").state, SwState::Running);
}

#[tokio::test]
async fn commands_are_answered_while_a_pass_executes() {
    let mut rig = Rig::new(&["img:1"]);
    rig.config(&doc(1, &[app(A, "a", "img:1", "")]));
    rig.settle().await;
    let task = rig.task(A);
    // The operator's restart goes through the loop, which bumps the local
    // counter and answers; the next pass restarts the app.
    let (reply, answer) = tokio::sync::oneshot::channel();
    rig.events
        .send(Event::Command(Command::Bump {
            uuid: A.into(),
            kind: CounterKind::Restart,
            reply,
        }))
        .await
        .unwrap();
    let ev = rig.inputs.events.recv().await.unwrap();
    rig.r.handle(ev).await;
    assert_eq!(answer.await.unwrap(), Ok(1));
    let calls = rig.settle().await;
    assert!(
        calls.contains(&Call::Restart(task.clone()))
            || calls.contains(&Call::RemoveContainer(task.clone())),
        "{calls:?}"
    );
    assert_eq!(rig.status("a").state, SwState::Running);
    assert_eq!(rig.status("a").restarts, 1);
}

#[tokio::test]
async fn pause_and_resume_go_through_the_loop_and_the_planner_leaves_a_pause() {
    let mut rig = Rig::new(&["img:1"]);
    rig.config(&doc(1, &[app(A, "a", "img:1", "")]));
    rig.settle().await;
    let task = rig.task(A);
    for (pause, call, state) in [
        (true, Call::Pause(task.clone()), SwState::Paused),
        (false, Call::Resume(task.clone()), SwState::Running),
    ] {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let cmd = Command::Pause {
            uuid: A.into(),
            pause,
            reply,
        };
        rig.r.handle(Event::Command(cmd)).await;
        assert_eq!(answer.await.unwrap(), Ok(task.clone()));
        let calls = rig.settle().await;
        assert_eq!(calls.first(), Some(&call), "{calls:?}");
        assert_eq!(calls.len(), 1, "nothing else done: {calls:?}");
        assert_eq!(rig.status("a").state, state);
    }
    // An app without a task cannot be paused.
    let (reply, answer) = tokio::sync::oneshot::channel();
    let cmd = Command::Pause {
        uuid: B.into(),
        pause: true,
        reply,
    };
    rig.r.handle(Event::Command(cmd)).await;
    assert!(answer.await.unwrap().unwrap_err().contains("no task"));
}

#[tokio::test]
async fn a_local_stop_holds_until_a_newer_config_generation() {
    let mut rig = Rig::new(&["img:1"]);
    rig.config(&doc(1, &[app(A, "a", "img:1", "")]));
    rig.settle().await;
    let task = rig.task(A);
    let (reply, answer) = tokio::sync::oneshot::channel();
    let cmd = Command::Activate {
        uuid: A.into(),
        activate: false,
        reply,
    };
    rig.r.handle(Event::Command(cmd)).await;
    assert_eq!(answer.await.unwrap(), Ok(1));
    let calls = rig.settle().await;
    assert!(calls.contains(&Call::RemoveContainer(task)), "{calls:?}");
    let st = rig.status("a");
    assert_eq!(st.state, SwState::Halted);
    assert!(st
        .local_override
        .unwrap()
        .contains("stopped by the operator"));
    // Saved: a new loop over the same store keeps it (the record holds it).
    let rec: outpost_reconcile::AppRecord = rig.store.app_records().unwrap().remove(A).unwrap();
    assert!(rec.local_activate.is_some_and(|o| !o.activate));
    // The same generation again changes nothing; a newer one ends it.
    rig.config(&doc(2, &[app(A, "a", "img:1", "")]));
    let calls = rig.settle().await;
    assert_eq!(creates(&calls), [A], "{calls:?}");
    let st = rig.status("a");
    assert_eq!(st.state, SwState::Running);
    assert_eq!(st.local_override, None);
}
