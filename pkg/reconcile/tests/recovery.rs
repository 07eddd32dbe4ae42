//! Reboots, agent crashes between an action and its record, lost history,
//! stale containers, and the persisted format.

mod common;

use common::*;
use outpost_api::{RestartMode, SwState};
use outpost_reconcile::{Action, AppRecord, History, Phase};

#[test]
fn after_a_reboot_previously_active_apps_restart_first() {
    let mut apps = vec![app(1), app(2), app(3)];
    apps[0].restart_policy.mode = RestartMode::Never;
    let mut w = World::running(apps);
    // App 1 ended on its own before the reboot: it was not active.
    w.exit(1, 0);
    w.step();
    assert!(!w.rec(1).was_active);
    w.reboot();
    let p = w.plan();
    assert_eq!(names(&p.actions), ["restart 2", "restart 3", "restart 1"]);
    assert!(p.statuses.iter().all(|s| s.state == SwState::Unknown));
    assert!(p.statuses.iter().all(|s| s.error.is_none()));
    w.converge();
    assert!(w.observed.iter().all(|o| o.phase == Phase::Running));
    assert_eq!(w.rec(2).attempts, 0, "a reboot is not a failure");
}

#[test]
fn a_reboot_during_a_backoff_waits_for_it() {
    let mut w = World::running(vec![app(1)]);
    w.tunables.backoff_initial_ms = 10 * MIN;
    w.exit(1, 1);
    let due = w.step().wake_at_ms.unwrap();
    w.reboot();
    let p = w.step();
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at_ms, Some(due));
    w.now = due;
    assert_eq!(names(&w.step().actions), ["restart 1"]);
}

#[test]
fn a_task_that_keeps_disappearing_right_after_its_start_backs_off() {
    let mut w = World::running(vec![app(1)]);
    let mut delays = Vec::new();
    for _ in 0..3 {
        w.advance(SEC);
        w.obs(1).phase = Phase::NoTask;
        let p = w.step();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let e = status(&p, 1).error.clone().unwrap();
        assert!(
            e.message
                .ends_with("task disappeared 1000 ms after its start"),
            "{}",
            e.message
        );
        let due = p.wake_at_ms.unwrap();
        delays.push((due - w.now) / SEC);
        w.now = due;
        assert_eq!(names(&w.step().actions), ["restart 1"]);
    }
    assert_eq!(delays, [10, 20, 40]);
    // Missing long after its start (a reboot): recreated at once, uncounted.
    w.advance(HOUR);
    w.reboot();
    assert_eq!(names(&w.step().actions), ["restart 1"]);
    assert_eq!(w.rec(1).attempts, 0, "the hour-long run reset the count");
}

#[test]
fn an_unrecorded_create_replace_or_purge_is_not_done_again() {
    type Edit = fn(&mut World);
    let cases: [(&str, Edit); 4] = [
        ("create 1", |w| w.desired.push(app(1))),
        ("replace 1", |w| {
            w.cfg(1).version = "2".into();
            w.cfg(1).restart_counter = 1;
        }),
        ("purge 1", |w| w.cfg(1).purge_counter = 1),
        ("purge 1", |w| {
            w.cfg(1).purge_counter = 1;
            w.cfg(1).restart_counter = 1;
        }),
    ];
    for (want, edit) in cases {
        let mut w = if want == "create 1" {
            World::new(vec![])
        } else {
            World::running(vec![app(1)])
        };
        edit(&mut w);
        assert_eq!(names(&w.step_unrecorded().actions), [want]);
        let p = w.plan();
        assert!(p.actions.is_empty(), "{want}: {:?}", p.actions);
        assert_eq!(state(&p, 1), SwState::Running);
        assert_eq!(status(&p, 1).error, None, "{want}");
        w.history = p.history;
        assert_eq!(w.rec(1).applied.as_ref(), Some(&w.desired[0]), "{want}");
    }
}

#[test]
fn an_unrecorded_restart_is_done_once_more() {
    // Documented limitation: the restart counter is not a containerd label.
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).restart_counter = 1;
    assert_eq!(names(&w.step_unrecorded().actions), ["restart 1"]);
    assert_eq!(names(&w.converge()), ["restart 1"]);
}

#[test]
fn lost_history_adopts_what_runs() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.exit(2, 0);
    w.history = History::default();
    let p = w.step();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(state(&p, 1), SwState::Running);
    assert_eq!(w.rec(1).applied.as_ref(), Some(&app(1)));
    // The stopped app's exit is handled by its policy (always) as new.
    assert!(p.wake_at_ms.is_some());
}

#[test]
fn a_stale_duplicate_container_is_halted_keeping_the_volume() {
    let mut w = World::running(vec![app(1)]);
    let mut old = app(1);
    old.version = "0".into();
    w.observed.push(container(&old, Phase::Stopped));
    let p = w.step();
    assert_eq!(
        p.actions,
        [Action::Halt {
            uuid: uuid(1),
            task_id: old.task_id()
        }]
    );
    assert_eq!(state(&p, 1), SwState::Running);
    assert!(
        w.rec(1).was_active,
        "halting the stale one does not touch the app"
    );
    assert_eq!(w.observed.len(), 1);
    assert!(w.volumes.contains(&(uuid(1), 0)));
    assert!(w.plan().actions.is_empty());
}

#[test]
fn an_app_found_running_after_failed_is_not_failed() {
    let mut a = app(1);
    a.restart_policy.max_attempts = 1;
    let mut w = World::running(vec![a]);
    for _ in 0..2 {
        w.exit(1, 1);
        w.advance(SEC);
        let p = w.step();
        if let Some(at) = p.wake_at_ms {
            w.now = at;
            w.step();
        }
    }
    assert!(w.rec(1).failed);
    w.obs(1).phase = Phase::Running; // started by hand
    let p = w.step();
    assert_eq!(state(&p, 1), SwState::Running);
    assert!(!w.rec(1).failed);
}

#[test]
fn history_round_trips_and_older_records_load() {
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).env.insert("A".into(), "1".into());
    w.exit(1, 1);
    w.step();
    let json = serde_json::to_string(&w.history).unwrap();
    let back: History = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w.history);

    let old = format!(
        r#"{{"apps":{{"{}":{{"restarts":3,"was_active":true}}}}}}"#,
        uuid(1)
    );
    let h: History = serde_json::from_str(&old).unwrap();
    assert_eq!(
        h.apps[&uuid(1)],
        AppRecord {
            restarts: 3,
            was_active: true,
            ..AppRecord::default()
        }
    );
}
