//! Create, start, states by task phase, activate, ordering, idempotence.

mod common;

use common::*;
use outpost_api::SwState;
use outpost_reconcile::{Action, Phase};

#[test]
fn a_new_app_is_created_then_left_alone() {
    let mut w = World::new(vec![app(1)]);
    let p = w.step();
    assert_eq!(p.actions, [Action::Create { uuid: uuid(1) }]);
    assert_eq!(state(&p, 1), SwState::Booting);
    assert!(w.volumes.contains(&(uuid(1), 0)));
    let p = w.plan();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(state(&p, 1), SwState::Running);
    assert_eq!(status(&p, 1).restarts, 0);
    assert_eq!(status(&p, 1).error, None);
    assert_eq!(p.wake_at_ms, None);
    assert_eq!(w.rec(1).applied.as_ref(), Some(&app(1)));
    assert!(w.rec(1).was_active);
}

#[test]
fn state_and_action_follow_the_task_phase() {
    // (phase, state, actions)
    let cases = [
        (Phase::Running, SwState::Running, vec![]),
        (Phase::Created, SwState::Installed, vec!["start 1"]),
        (Phase::Pausing, SwState::Pausing, vec![]),
        (Phase::Paused, SwState::Paused, vec![]),
        (Phase::NoTask, SwState::Unknown, vec!["restart 1"]),
    ];
    for (phase, want_state, want_actions) in cases {
        let mut w = World::running(vec![app(1)]);
        w.advance(MIN);
        w.obs(1).phase = phase;
        let p = w.plan();
        assert_eq!(state(&p, 1), want_state, "{phase:?}");
        assert_eq!(names(&p.actions), want_actions, "{phase:?}");
        assert_eq!(status(&p, 1).error, None, "{phase:?}");
        w.converge();
        let after = if phase == Phase::Paused || phase == Phase::Pausing {
            want_state
        } else {
            SwState::Running
        };
        assert_eq!(state(&w.plan(), 1), after, "{phase:?} after");
    }
}

#[test]
fn activate_false_halts_keeping_volumes_and_true_creates_again() {
    let stopped = |w: &mut World| w.exit(1, 0);
    let phases: [(&str, Scenario); 5] = [
        ("running", |_| {}),
        ("paused", |w| w.obs(1).phase = Phase::Paused),
        ("stopped", stopped),
        ("created", |w| w.obs(1).phase = Phase::Created),
        ("no task", |w| w.obs(1).phase = Phase::NoTask),
    ];
    for (name, set_up) in phases {
        let mut w = World::running(vec![app(1)]);
        set_up(&mut w);
        w.cfg(1).activate = false;
        let p = w.step();
        assert_eq!(
            p.actions,
            [Action::Halt {
                uuid: uuid(1),
                task_id: app(1).task_id()
            }],
            "{name}"
        );
        assert_eq!(state(&p, 1), SwState::Halting, "{name}");
        let p = w.plan();
        assert!(p.actions.is_empty(), "{name}: {:?}", p.actions);
        assert_eq!(state(&p, 1), SwState::Halted, "{name}");
        assert!(w.observed.is_empty(), "{name}");
        assert!(w.volumes.contains(&(uuid(1), 0)), "{name}: volume kept");
        assert!(!w.rec(1).was_active, "{name}");

        w.cfg(1).activate = true;
        let p = w.step();
        assert_eq!(names(&p.actions), ["create 1"], "{name}");
        assert_eq!(w.volumes.len(), 1, "{name}: same volume generation");
        assert_eq!(state(&w.plan(), 1), SwState::Running, "{name}");
        assert_eq!(w.rec(1).restarts, 1, "{name}");
    }
}

#[test]
fn changes_made_while_halted_apply_on_activation_except_purge_class() {
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).activate = false;
    w.converge();
    w.cfg(1).env.insert("MODE".into(), "fast".into());
    w.cfg(1).image = "hello:2".into();
    let p = w.plan();
    assert!(p.actions.is_empty());
    assert_eq!(
        status(&p, 1).error,
        None,
        "nothing pending reported while halted"
    );
    w.cfg(1).activate = true;
    w.converge();
    let applied = w.rec(1).applied.clone().unwrap();
    assert_eq!(applied.env.get("MODE").map(String::as_str), Some("fast"));
    assert_eq!(applied.image, "hello:1", "the image needs a purge");
    let err = status(&w.plan(), 1).error.clone().unwrap();
    assert!(
        err.message.contains("needs purge: image hello:1 → hello:2"),
        "{}",
        err.message
    );
}

#[test]
fn previously_active_apps_start_first() {
    let mut w = World::new(vec![app(1), app(2), app(3), app(4)]);
    for (n, was_active) in [(1, false), (2, true), (3, false), (4, true)] {
        let rec = w.history.apps.entry(uuid(n)).or_default();
        rec.applied = Some(app(n));
        rec.was_active = was_active;
        w.volumes.insert((uuid(n), 0));
    }
    let p = w.plan();
    assert_eq!(
        names(&p.actions),
        ["create 2", "create 4", "create 1", "create 3"]
    );
}

#[test]
fn teardown_comes_before_starts() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.desired = vec![app(3), app(1)];
    w.cfg(1).activate = false;
    let p = w.plan();
    assert_eq!(names(&p.actions), ["halt 1", "remove 2", "create 3"]);
}

#[test]
fn the_same_input_gives_the_same_plan() {
    let mut w = World::running(vec![app(1), app(2)]);
    w.exit(2, 1);
    w.cfg(1).restart_counter = 1;
    assert_eq!(w.plan(), w.plan());
}

type Scenario = fn(&mut World);

#[test]
fn planning_on_the_result_of_a_plan_asks_for_nothing() {
    let scenarios: [(&str, Scenario); 12] = [
        ("fresh install", |w| w.observed.clear()),
        ("restart counter", |w| w.cfg(1).restart_counter += 1),
        ("purge counter", |w| w.cfg(2).purge_counter += 1),
        ("both counters", |w| {
            w.cfg(1).restart_counter = 7;
            w.cfg(1).purge_counter = 7;
        }),
        ("new version + restart", |w| {
            w.cfg(1).version = "2".into();
            w.cfg(1).restart_counter += 1;
        }),
        ("new version + purge", |w| {
            w.cfg(2).version = "9".into();
            w.cfg(2).image = "hello:9".into();
            w.cfg(2).purge_counter += 1;
        }),
        ("deactivate", |w| w.cfg(1).activate = false),
        ("remove app", |w| w.desired.retain(|a| a.app_num != 2)),
        ("add app", |w| w.desired.push(app(3))),
        ("created task", |w| w.obs(1).phase = Phase::Created),
        ("reboot", |w| w.reboot()),
        ("everything", |w| {
            w.reboot();
            w.cfg(1).restart_counter += 1;
            w.cfg(2).activate = false;
            w.desired.push(app(3));
            w.cfg(3).env.insert("A".into(), "1".into());
        }),
    ];
    for (name, change) in scenarios {
        let mut w = World::running(vec![app(1), app(2)]);
        change(&mut w);
        let done = w.converge();
        assert!(!done.is_empty(), "{name}: something to do");
        let p = w.plan();
        assert!(p.actions.is_empty(), "{name}: {:?}", p.actions);
        w.advance(HOUR);
        let p = w.plan();
        assert!(
            p.actions.is_empty(),
            "{name} an hour later: {:?}",
            p.actions
        );
        assert!(
            p.statuses.iter().all(|s| s.error.is_none()),
            "{name}: {:#?}",
            p.statuses
        );
        assert_eq!(p.wake_at_ms, None, "{name}");
    }
}
