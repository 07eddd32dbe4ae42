//! The restart policy: modes, exponential backoff, healthy reset, FAILED.

mod common;

use common::*;
use outpost_api::{RestartMode, RestartPolicy, Severity, SwState};
use outpost_reconcile::{datetime, Action};

fn with_policy(mode: RestartMode, max_attempts: u32) -> World {
    let mut a = app(1);
    a.restart_policy = RestartPolicy { mode, max_attempts };
    World::running(vec![a])
}

#[test]
fn each_mode_decides_on_each_exit() {
    use RestartMode::*;
    // (mode, exit, state after the exit, restarts?, error fragment, terminal?)
    let cases = [
        (Always, 0, SwState::Halted, true, None, false),
        (
            Always,
            1,
            SwState::Broken,
            true,
            Some("task broke with exit status 1"),
            false,
        ),
        (OnFailure, 0, SwState::Halted, false, None, false),
        (
            OnFailure,
            2,
            SwState::Broken,
            true,
            Some("task broke with exit status 2"),
            false,
        ),
        (Never, 0, SwState::Halted, false, None, false),
        (
            Never,
            3,
            SwState::Broken,
            false,
            Some("task broke with exit status 3"),
            true,
        ),
    ];
    for (mode, exit, want_state, restarts, fragment, terminal) in cases {
        let what = format!("{mode:?} exit {exit}");
        let mut w = with_policy(mode, 10);
        w.advance(MIN);
        w.exit(1, exit);
        let p = w.step();
        assert!(p.actions.is_empty(), "{what}: no restart at once");
        assert_eq!(state(&p, 1), want_state, "{what}");
        let s = status(&p, 1);
        match fragment {
            Some(f) => {
                let e = s.error.clone().unwrap();
                assert!(e.message.contains(f), "{what}: {}", e.message);
                let sev = if terminal {
                    Severity::Error
                } else {
                    Severity::Notice
                };
                assert_eq!(e.severity, sev, "{what}");
            }
            None => assert_eq!(s.error, None, "{what}"),
        }
        if restarts {
            let due = w.now + 10 * SEC;
            assert_eq!(p.wake_at_ms, Some(due), "{what}");
            let b = s.backoff.clone().unwrap();
            assert_eq!((b.attempts, b.max_attempts), (1, 10), "{what}");
            assert_eq!(b.next_start, Some(datetime(due)), "{what}");
            if exit == 0 {
                let note = s.note.clone().unwrap();
                assert!(
                    note.starts_with(
                        "task exited with status 0; restart 1 of 10 at 2023-11-14T22:14:30Z"
                    ),
                    "{note}"
                );
            }
            w.now = due - 1;
            assert!(w.step().actions.is_empty(), "{what}: still waiting");
            w.now = due;
            let p = w.step();
            assert_eq!(
                p.actions,
                [Action::Restart {
                    uuid: uuid(1),
                    task_id: app(1).task_id()
                }],
                "{what}"
            );
            assert_eq!(state(&w.plan(), 1), SwState::Running, "{what}");
            assert_eq!(w.rec(1).restarts, 1, "{what}");
        } else {
            assert_eq!(p.wake_at_ms, None, "{what}");
            w.advance(HOUR);
            let p = w.step();
            assert!(p.actions.is_empty(), "{what}: never restarted");
            assert_eq!(state(&p, 1), want_state, "{what}");
            assert!(!w.rec(1).was_active, "{what}");
        }
    }
}

#[test]
fn backoff_doubles_from_ten_seconds_to_five_minutes() {
    let mut w = with_policy(RestartMode::Always, 0);
    let mut delays = Vec::new();
    for attempt in 1..=8u32 {
        w.advance(SEC);
        w.exit(1, 1);
        let p = w.step();
        let due = p.wake_at_ms.unwrap();
        delays.push((due - w.now) / SEC);
        let b = status(&p, 1).backoff.clone().unwrap();
        assert_eq!((b.attempts, b.max_attempts), (attempt, 0));
        let e = status(&p, 1).error.clone().unwrap();
        assert_eq!(e.retries, attempt - 1);
        assert_eq!(
            e.retry_condition.split(" at ").next().unwrap(),
            format!("restart {attempt} of unlimited")
        );
        w.now = due;
        assert_eq!(names(&w.step().actions), ["restart 1"]);
    }
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn the_crash_loop_error_keeps_first_seen_and_escalates_by_count() {
    let mut w = with_policy(RestartMode::Always, 0);
    let first = w.now + SEC;
    // (crashes, severity)
    let mut seen = Vec::new();
    for _ in 0..22 {
        w.advance(SEC);
        w.exit(1, 1);
        let p = w.step();
        let e = status(&p, 1).error.clone().unwrap();
        assert_eq!(e.first_seen, datetime(first));
        seen.push(e.severity);
        w.now = p.wake_at_ms.unwrap();
        w.step();
    }
    assert_eq!(seen[10], Severity::Notice, "10 retries");
    assert!(seen[11] >= Severity::Warning, "11 retries");
    assert_eq!(seen[21], Severity::Error, "21 retries");
}

#[test]
fn a_healthy_run_resets_the_count() {
    // (run length before the next crash, next delay in s, attempts)
    let cases = [
        (9 * MIN, 20, 2),
        (10 * MIN - 1, 20, 2),
        (10 * MIN, 10, 1),
        (HOUR, 10, 1),
    ];
    for (run, delay, attempts) in cases {
        let mut w = with_policy(RestartMode::Always, 10);
        w.advance(SEC);
        w.exit(1, 1);
        w.now = w.step().wake_at_ms.unwrap();
        w.step();
        w.advance(run);
        w.exit(1, 1);
        let p = w.step();
        assert_eq!((p.wake_at_ms.unwrap() - w.now) / SEC, delay, "run {run}");
        assert_eq!(w.rec(1).attempts, attempts, "run {run}");
    }
}

#[test]
fn a_long_enough_run_clears_the_backoff_from_the_status() {
    let mut w = with_policy(RestartMode::Always, 10);
    w.advance(SEC);
    w.exit(1, 1);
    w.now = w.step().wake_at_ms.unwrap();
    w.step();
    let p = w.step();
    assert_eq!(state(&p, 1), SwState::Running);
    assert!(status(&p, 1).backoff.is_some(), "on probation");
    assert!(
        status(&p, 1).error.is_some(),
        "the last crash is still shown"
    );
    let healthy = w.rec(1).started_ms.unwrap() + 10 * MIN;
    assert_eq!(p.wake_at_ms, Some(healthy), "plans again when healthy");
    w.now = healthy;
    let p = w.step();
    assert_eq!(status(&p, 1).backoff, None);
    assert_eq!(status(&p, 1).error, None);
    assert_eq!(w.rec(1).attempts, 0);
}

#[test]
fn after_max_attempts_the_app_is_failed_until_the_config_changes() {
    let mut w = with_policy(RestartMode::OnFailure, 3);
    for _ in 0..3 {
        w.advance(SEC);
        w.exit(1, 1);
        w.now = w.step().wake_at_ms.unwrap();
        assert_eq!(names(&w.step().actions), ["restart 1"]);
    }
    w.advance(SEC);
    w.exit(1, 1);
    let p = w.step();
    assert!(p.actions.is_empty());
    assert_eq!(p.wake_at_ms, None);
    let s = status(&p, 1);
    assert_eq!(s.state, SwState::Failed);
    let e = s.error.clone().unwrap();
    assert_eq!(e.severity, Severity::Error);
    assert!(
        e.message
            .ends_with("task broke with exit status 1; restart policy gave up after 3 restarts"),
        "{}",
        e.message
    );
    assert_eq!(
        e.retry_condition,
        "restart_counter, purge_counter or config change"
    );
    let b = s.backoff.clone().unwrap();
    assert_eq!((b.attempts, b.max_attempts, b.next_start), (3, 3, None));

    // Terminal: time and a reboot change nothing.
    w.advance(24 * HOUR);
    assert!(w.step().actions.is_empty());
    w.reboot();
    let p = w.step();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(state(&p, 1), SwState::Failed);
    assert!(!w.rec(1).was_active);
}

#[test]
fn failed_ends_with_any_config_change() {
    type Edit = fn(&mut World);
    // (edit, actions until running again)
    let cases: [(Edit, &[&str]); 6] = [
        (|w| w.cfg(1).restart_counter += 1, &["restart 1"]),
        (|w| w.cfg(1).purge_counter += 1, &["purge 1"]),
        (
            |w| {
                w.cfg(1).env.insert("FIX".into(), "1".into());
            },
            &["replace 1"],
        ),
        (|w| w.cfg(1).restart_policy.max_attempts = 5, &["restart 1"]),
        (
            |w| {
                w.cfg(1).version = "2".into();
            },
            &["replace 1"],
        ),
        (|w| w.cfg(1).activate = false, &["halt 1"]),
    ];
    for (edit, want) in cases {
        let mut w = with_policy(RestartMode::Always, 1);
        w.advance(SEC);
        w.exit(1, 1);
        w.now = w.step().wake_at_ms.unwrap();
        w.step();
        w.advance(SEC);
        w.exit(1, 1);
        assert_eq!(state(&w.step(), 1), SwState::Failed);
        edit(&mut w);
        assert_eq!(names(&w.converge()), want);
        let p = w.plan();
        let s = status(&p, 1);
        assert!(!w.rec(1).failed);
        assert_eq!(s.error, None, "{want:?}");
        assert_eq!(s.backoff, None, "{want:?}");
        let running = if want == ["halt 1"] {
            SwState::Halted
        } else {
            SwState::Running
        };
        assert_eq!(s.state, running, "{want:?}");
        assert!(
            !s.note.as_deref().unwrap_or("").contains("waits"),
            "{:?}",
            s.note
        );
    }
}

#[test]
fn max_attempts_zero_never_gives_up() {
    let mut w = with_policy(RestartMode::Always, 0);
    for _ in 0..50 {
        w.advance(SEC);
        w.exit(1, 137);
        w.now = w.step().wake_at_ms.unwrap();
        assert_eq!(names(&w.step().actions), ["restart 1"]);
    }
    assert_eq!(w.rec(1).attempts, 50);
    assert!(!w.rec(1).failed);
}

#[test]
fn a_paused_app_is_left_alone() {
    let mut w = with_policy(RestartMode::Always, 10);
    w.obs(1).phase = outpost_reconcile::Phase::Paused;
    for _ in 0..3 {
        let p = w.step();
        assert!(p.actions.is_empty());
        assert_eq!(state(&p, 1), SwState::Paused);
        w.advance(HOUR);
    }
}

#[test]
fn an_exit_is_counted_once_however_often_it_is_planned() {
    let mut w = with_policy(RestartMode::Always, 10);
    w.advance(SEC);
    w.exit(1, 1);
    for _ in 0..5 {
        w.step();
        w.advance(SEC);
    }
    assert_eq!(w.rec(1).attempts, 1);
}
