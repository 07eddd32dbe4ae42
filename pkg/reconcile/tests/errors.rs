//! Failed actions, severity escalation, rejected apps, removals.

mod common;

use common::*;
use outpost_api::{validate::Problem, RejectedApp, Severity, SwState};
use outpost_reconcile::{datetime, Action, ActionKind, ErrorKind};

fn rejected(n: Option<u32>) -> RejectedApp {
    RejectedApp {
        index: 1,
        uuid: n.map(uuid),
        display_name: n.map(|n| format!("app{n}")),
        problems: vec![Problem::new(
            "apps[1].resources.memory_kib",
            "must be at least 4096 (got 16)",
        )],
    }
}

#[test]
fn failed_creates_retry_with_backoff_escalate_and_clear_on_success() {
    let mut w = World::new(vec![app(1)]);
    let start = w.now;
    // (failure number, retries, severity, next delay s)
    let cases = [
        (1, 0, Severity::Notice, 10),
        (2, 1, Severity::Notice, 20),
        (3, 2, Severity::Notice, 40),
        (6, 5, Severity::Notice, 300),
        (12, 11, Severity::Warning, 300),
        (22, 21, Severity::Error, 300),
    ];
    let mut failures = 0;
    for (n, retries, severity, delay) in cases {
        while failures < n {
            let p = w.step_with(|_| Err("pull registry.local/hello:1: connection refused".into()));
            assert_eq!(names(&p.actions), ["create 1"], "failure {}", failures + 1);
            failures += 1;
            let next = w.rec(1).next_start_ms.unwrap();
            // Waiting: no action, BROKEN, wake at the retry.
            let p = w.plan();
            assert!(p.actions.is_empty());
            assert_eq!(state(&p, 1), SwState::Broken);
            assert_eq!(p.wake_at_ms, Some(next));
            if failures == n {
                let e = status(&p, 1).error.clone().unwrap();
                assert_eq!(e.retries, retries, "failure {n}");
                assert_eq!((next - w.now) / SEC, delay, "failure {n}");
                assert_eq!(e.first_seen, datetime(start), "failure {n}");
                assert_eq!(e.last_seen, datetime(w.now));
                assert!(e.severity >= severity, "failure {n}: {:?}", e.severity);
                assert_eq!(
                    e.message,
                    format!("app app1 ({}): create failed: pull registry.local/hello:1: connection refused", uuid(1))
                );
                assert!(
                    e.retry_condition.starts_with("retry at 20"),
                    "{}",
                    e.retry_condition
                );
            }
            w.now = next;
        }
    }
    // Only by count, not age: the first 3 failures took little time.
    let p = w.step();
    assert_eq!(names(&p.actions), ["create 1"]);
    let p = w.plan();
    assert_eq!(state(&p, 1), SwState::Running);
    assert_eq!(status(&p, 1).error, None);
    assert_eq!(w.rec(1).next_start_ms, None);
}

#[test]
fn severity_of_an_action_error_escalates_with_age_too() {
    let mut w = World::running(vec![app(1)]);
    w.exit(1, 1);
    w.tunables.backoff_initial_ms = 2 * HOUR;
    w.tunables.backoff_max_ms = 2 * HOUR;
    w.step(); // counts the exit, restart due in 2 h
    w.now = w.rec(1).next_start_ms.unwrap();
    w.step_with(|_| Err("shim died".into()));
    assert_eq!(w.rec(1).error_kind, Some(ErrorKind::Action));
    assert_eq!(
        status(&w.plan(), 1).error.clone().unwrap().severity,
        Severity::Notice
    );
    w.now = w.rec(1).next_start_ms.unwrap();
    w.step_with(|_| Err("shim died".into()));
    let e = status(&w.plan(), 1).error.clone().unwrap();
    assert_eq!(e.retries, 1);
    assert_eq!(e.severity, Severity::Warning, "2 h old");
}

#[test]
fn a_failed_start_of_a_created_task_is_retried_with_start() {
    let mut w = World::running(vec![app(1)]);
    w.obs(1).phase = outpost_reconcile::Phase::Created;
    let p = w.step_with(|_| Err("exec format error".into()));
    assert_eq!(names(&p.actions), ["start 1"]);
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert_eq!(state(&p, 1), SwState::Installed);
    w.now = p.wake_at_ms.unwrap();
    assert_eq!(names(&w.step().actions), ["start 1"]);
    assert_eq!(status(&w.plan(), 1).error, None);
    assert_eq!(w.rec(1).restarts, 0, "a start is not a restart");
}

#[test]
fn a_counter_change_is_not_held_by_an_older_backoff() {
    let mut w = World::running(vec![app(1)]);
    w.exit(1, 1);
    let p = w.step();
    assert!(p.wake_at_ms.is_some());
    w.cfg(1).restart_counter = 1;
    assert_eq!(names(&w.step().actions), ["restart 1"], "acts at once");
    assert_eq!(w.rec(1).attempts, 0);
}

#[test]
fn a_failed_counter_restart_is_retried_after_its_backoff() {
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).restart_counter = 1;
    w.step_with(|_| Err("stop timed out".into()));
    let p = w.plan();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.wake_at_ms, Some(w.now + 10 * SEC));
    w.now += 10 * SEC;
    assert_eq!(names(&w.step().actions), ["restart 1"]);
    assert_eq!(w.rec(1).applied.as_ref().unwrap().restart_counter, 1);
    assert!(w.plan().actions.is_empty());
}

#[test]
fn a_rejected_app_that_runs_is_left_alone_with_its_error() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.desired.retain(|a| a.app_num == 1);
    w.rejected = vec![rejected(Some(2))];
    let p = w.step();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let s = status(&p, 2);
    assert_eq!(s.state, SwState::Running);
    let e = s.error.clone().unwrap();
    assert_eq!(e.severity, Severity::Error);
    assert_eq!(
        e.message,
        format!(
            "app app2 ({}) rejected: apps[1].resources.memory_kib: must be at least 4096 (got 16)",
            uuid(2)
        )
    );
    assert_eq!(status(&p, 1).error, None, "the other app is not disturbed");

    // Not restarted either: left exactly as it is.
    w.exit(2, 1);
    w.advance(HOUR);
    let p = w.step();
    assert!(p.actions.is_empty());
    assert_eq!(state(&p, 2), SwState::Broken);
    assert_eq!(
        status(&p, 2).error.clone().unwrap().first_seen,
        datetime(T0)
    );

    // Fixed: the record is still there, the app is handled again.
    w.rejected.clear();
    w.desired.push(app(2));
    let p = w.step();
    assert_eq!(
        names(&p.actions),
        Vec::<String>::new(),
        "exit counted, restart later"
    );
    let e = status(&p, 2).error.clone().unwrap();
    assert!(
        e.message.ends_with("task broke with exit status 1"),
        "{}",
        e.message
    );
    w.now = p.wake_at_ms.unwrap();
    assert_eq!(names(&w.step().actions), ["restart 2"]);
}

#[test]
fn a_rejected_app_that_does_not_run_gets_a_status() {
    let mut w = World::new(vec![app(1)]);
    w.rejected = vec![rejected(Some(2))];
    let p = w.plan();
    assert_eq!(names(&p.actions), ["create 1"]);
    assert_eq!(state(&p, 2), SwState::Unknown);
    assert_eq!(
        status(&p, 2).error.clone().unwrap().severity,
        Severity::Error
    );
}

#[test]
fn a_rejected_duplicate_of_a_valid_app_is_noted_on_it() {
    let mut w = World::running(vec![app(1)]);
    w.rejected = vec![rejected(Some(1))];
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert_eq!(p.statuses.len(), 1);
    let s = status(&p, 1);
    assert_eq!(s.state, SwState::Running);
    assert_eq!(s.error, None);
    assert!(s
        .note
        .clone()
        .unwrap()
        .starts_with("another config entry with this UUID was rejected"));
}

#[test]
fn apps_gone_from_the_config_are_removed_with_their_volumes() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.desired.retain(|a| a.app_num == 1);
    let p = w.step();
    assert_eq!(
        p.actions,
        [Action::Remove {
            uuid: uuid(2),
            task_id: app(2).task_id(),
            purge_counter: 0
        }]
    );
    assert_eq!(p.statuses.len(), 1, "no status for a removed app");
    assert!(!w.history.apps.contains_key(&uuid(2)));
    assert!(w.volumes.iter().all(|(u, _)| *u == uuid(1)));
    assert!(w.plan().actions.is_empty());
}

#[test]
fn a_halted_app_dropped_from_the_config_still_loses_its_volumes() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.cfg(2).activate = false;
    w.converge();
    assert!(w.volumes.contains(&(uuid(2), 0)));
    w.desired.retain(|a| a.app_num == 1);
    let p = w.step();
    assert_eq!(names(&p.actions), ["remove 2"]);
    assert!(!w.volumes.iter().any(|(u, _)| *u == uuid(2)));
    assert!(w.plan().actions.is_empty());
    assert!(!w.history.apps.contains_key(&uuid(2)));
}

#[test]
fn a_failed_removal_is_retried_after_its_backoff() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.desired.retain(|a| a.app_num == 1);
    w.step_with(|_| Err("device or resource busy".into()));
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at_ms, Some(w.now + 10 * SEC));
    assert_eq!(w.rec(2).retry_of, Some(ActionKind::Remove));
    w.now += 10 * SEC;
    assert_eq!(names(&w.step().actions), ["remove 2"]);
    assert!(w.observed.iter().all(|o| o.uuid == uuid(1)));
}

#[test]
fn a_rejected_entry_without_uuid_holds_back_every_removal() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.desired.retain(|a| a.app_num == 1);
    w.rejected = vec![rejected(None)];
    let p = w.step();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].contains(&app(2).task_id()),
        "{}",
        p.warnings[0]
    );
    assert!(w.history.apps.contains_key(&uuid(2)), "record kept");
    w.rejected.clear();
    assert_eq!(names(&w.step().actions), ["remove 2"]);
}

#[test]
fn a_creation_that_failed_early_is_cleaned_up_when_the_app_leaves() {
    let mut w = World::new(vec![app(1)]);
    w.step_with(|_| Err("no space left on device".into()));
    w.desired.clear();
    let p = w.step();
    assert_eq!(names(&p.actions), ["remove 1"]);
    assert!(w.history.apps.is_empty());
    assert!(w.plan().actions.is_empty());
}
