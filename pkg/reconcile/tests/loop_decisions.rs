//! The loop's decisions around `plan`: local counters, wave order, HALTING
//! for removed apps, known-good promotion and the image GC's keep set.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use outpost_api::{AppStatus, SwState};
use outpost_reconcile::{
    images_to_keep, keep_removed_visible, with_local_counters, Action, AppRecord, AppStatusUpdate,
    ConfigInEffect, HealthTracker, History, KnownGood, LocalCounters, Waves,
};

fn update(n: u32, state: SwState) -> AppStatusUpdate {
    AppStatusUpdate {
        uuid: uuid(n),
        state,
        error: None,
        backoff: None,
        restarts: 0,
        note: None,
    }
}

fn app_status(n: u32, state: SwState) -> AppStatus {
    AppStatus {
        uuid: uuid(n),
        display_name: format!("app{n}"),
        version: "1".into(),
        image: "hello:1".into(),
        state,
        activated: true,
        restarts: 2,
        domain: None,
        backoff: None,
        error: None,
        vnc_password_set: false,
        download: None,
        local_override: None,
    }
}

#[test]
fn local_counters_are_added_to_the_desired_counters_wrapping() {
    // (config restart, config purge, local, desired restart, desired purge)
    let cases = [
        (0, 0, None, 0, 0),
        (3, 1, Some((0, 0)), 3, 1),
        (3, 1, Some((2, 0)), 5, 1),
        (0, 4, Some((0, 5)), 0, 9),
        (u64::MAX, 0, Some((1, 0)), 0, 0),
        (u64::MAX - 1, u64::MAX, Some((3, 2)), 1, 1),
    ];
    for (rc, pc, local, want_rc, want_pc) in cases {
        let mut a = app(1);
        a.restart_counter = rc;
        a.purge_counter = pc;
        let mut counters = BTreeMap::new();
        if let Some((restart, purge)) = local {
            counters.insert(uuid(1), LocalCounters { restart, purge });
        }
        // Another app's counters never leak into this one.
        counters.insert(
            uuid(9),
            LocalCounters {
                restart: 7,
                purge: 7,
            },
        );
        let out = with_local_counters(&[a.clone(), app(2)], &counters);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].restart_counter, out[0].purge_counter),
            (want_rc, want_pc),
            "{rc}/{pc} + {local:?}"
        );
        assert_eq!(out[1], app(2), "app without local counters unchanged");
        // Nothing else changes.
        let mut back = out[0].clone();
        back.restart_counter = rc;
        back.purge_counter = pc;
        assert_eq!(back, a);
    }
}

fn create(n: u32) -> Action {
    Action::Create { uuid: uuid(n) }
}
fn restart(n: u32) -> Action {
    Action::Restart {
        uuid: uuid(n),
        task_id: app(n).task_id(),
    }
}
fn halt(n: u32) -> Action {
    Action::Halt {
        uuid: uuid(n),
        task_id: app(n).task_id(),
    }
}
fn remove(n: u32) -> Action {
    Action::Remove {
        uuid: uuid(n),
        task_id: app(n).task_id(),
        purge_counter: 0,
    }
}

fn history_active(active: &[u32], inactive: &[u32]) -> History {
    let mut h = History::default();
    for (ns, was_active) in [(active, true), (inactive, false)] {
        for n in ns {
            h.apps.insert(
                uuid(*n),
                AppRecord {
                    was_active,
                    ..AppRecord::default()
                },
            );
        }
    }
    h
}

#[test]
fn waves_run_teardown_then_previously_active_then_the_rest() {
    // (actions, active before, inactive before, waves as names)
    type Case = (
        Vec<Action>,
        &'static [u32],
        &'static [u32],
        [Vec<&'static str>; 3],
    );
    let cases: Vec<Case> = vec![
        (vec![], &[], &[], [vec![], vec![], vec![]]),
        (
            vec![create(1), create(2), create(3)],
            &[],
            &[],
            [vec![], vec![], vec!["create 1", "create 2", "create 3"]],
        ),
        // After a reboot: the apps that ran come back first, config order kept.
        (
            vec![create(1), restart(2), create(3), restart(4)],
            &[4, 2],
            &[1],
            [
                vec![],
                vec!["restart 2", "restart 4"],
                vec!["create 1", "create 3"],
            ],
        ),
        // Teardown first, even of an app that was active.
        (
            vec![create(1), halt(2), remove(3), restart(4)],
            &[2, 3, 4],
            &[],
            [
                vec!["halt 2", "remove 3"],
                vec!["restart 4"],
                vec!["create 1"],
            ],
        ),
        // A record without was_active is not "returning".
        (
            vec![restart(5)],
            &[],
            &[5],
            [vec![], vec![], vec!["restart 5"]],
        ),
    ];
    for (actions, active, inactive, want) in cases {
        let h = history_active(active, inactive);
        let got = Waves::new(actions.clone(), &h).in_order();
        let got: Vec<Vec<String>> = got.iter().map(|w| names(w)).collect();
        assert_eq!(got, want, "{actions:?} with active {active:?}");
    }
}

#[test]
fn an_app_being_removed_stays_visible_as_halting() {
    let before: BTreeMap<String, AppStatus> = [
        (uuid(1), app_status(1, SwState::Running)),
        (uuid(2), app_status(2, SwState::Running)),
        (uuid(3), app_status(3, SwState::Halted)),
    ]
    .into();
    // (actions, statuses published by this pass, want: uuid → state)
    type Case = (Vec<Action>, Vec<u32>, Vec<(u32, SwState)>);
    let cases: Vec<Case> = vec![
        // Nothing removed: nothing added.
        (
            vec![create(4)],
            vec![1, 2],
            vec![(1, SwState::Running), (2, SwState::Running)],
        ),
        // App 3 is being removed: still shown, HALTING.
        (
            vec![remove(3)],
            vec![1, 2],
            vec![
                (1, SwState::Running),
                (2, SwState::Running),
                (3, SwState::Halting),
            ],
        ),
        // A halt is no removal (the plan shows it itself).
        (vec![halt(2)], vec![1], vec![(1, SwState::Running)]),
        // Removed without an earlier status: nothing to show.
        (vec![remove(7)], vec![1], vec![(1, SwState::Running)]),
        // A status the pass published wins over the old one.
        (vec![remove(1)], vec![1], vec![(1, SwState::Running)]),
    ];
    for (actions, published, want) in cases {
        let mut statuses: BTreeMap<String, AppStatus> = published
            .iter()
            .map(|n| (uuid(*n), app_status(*n, SwState::Running)))
            .collect();
        keep_removed_visible(&actions, &before, &mut statuses);
        let got: Vec<(String, SwState)> = statuses
            .values()
            .map(|s| (s.uuid.clone(), s.state))
            .collect();
        let want: Vec<(String, SwState)> = want.into_iter().map(|(n, s)| (uuid(n), s)).collect();
        assert_eq!(got, want, "{actions:?}");
    }
    // The kept status is the old one, only its state changes.
    let mut statuses = BTreeMap::new();
    keep_removed_visible(&[remove(3)], &before, &mut statuses);
    let mut want = before[&uuid(3)].clone();
    want.state = SwState::Halting;
    assert_eq!(statuses[&uuid(3)], want);
}

const WINDOW: u64 = 10 * MIN;

fn inactive(n: u32) -> outpost_api::AppConfig {
    let mut a = app(n);
    a.activate = false;
    a
}

#[test]
fn known_good_promotion_after_a_healthy_window() {
    let apps = vec![app(1), app(2), inactive(3)];
    let running = vec![update(1, SwState::Running), update(2, SwState::Running)];
    let cfg = |rejected| ConfigInEffect {
        generation: 7,
        apps: &apps,
        rejected,
    };
    // Each case: a sequence of (minutes after T0, statuses, rejected, promote?).
    type Step = (u64, Vec<AppStatusUpdate>, usize, bool);
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "never healthy",
            vec![
                (
                    0,
                    vec![update(1, SwState::Running), update(2, SwState::Booting)],
                    0,
                    false,
                ),
                (20, vec![update(1, SwState::Running)], 0, false),
                (40, vec![], 0, false),
            ],
        ),
        (
            "healthy but not long enough",
            vec![
                (0, running.clone(), 0, false),
                (9, running.clone(), 0, false),
            ],
        ),
        (
            "healthy for the window, then once only",
            vec![
                (0, running.clone(), 0, false),
                (10, running.clone(), 0, true),
                (11, running.clone(), 0, false),
                (60, running.clone(), 0, false),
            ],
        ),
        (
            "a break restarts the window",
            vec![
                (0, running.clone(), 0, false),
                (
                    8,
                    vec![update(1, SwState::Running), update(2, SwState::Broken)],
                    0,
                    false,
                ),
                (9, running.clone(), 0, false),
                (18, running.clone(), 0, false),
                (19, running.clone(), 0, true),
            ],
        ),
        (
            "a rejected app blocks promotion",
            vec![
                (0, running.clone(), 1, false),
                (30, running.clone(), 1, false),
                // Fixed: the window starts then.
                (31, running.clone(), 0, false),
                (41, running.clone(), 0, true),
            ],
        ),
        (
            "inactive apps need not run",
            vec![
                (0, running.clone(), 0, false),
                (10, running.clone(), 0, true),
            ],
        ),
    ];
    for (name, steps) in cases {
        let mut t = HealthTracker::default();
        for (i, (min, statuses, rejected, want)) in steps.into_iter().enumerate() {
            let promote = t.observe(&cfg(rejected), &statuses, WINDOW, T0 + min * MIN);
            assert_eq!(promote, want, "{name}: step {i} at {min} min");
            if promote {
                t.promoted(7);
            }
        }
    }
}

#[test]
fn known_good_promotion_is_asked_again_until_saved() {
    let apps = vec![app(1)];
    let cfg = ConfigInEffect {
        generation: 1,
        apps: &apps,
        rejected: 0,
    };
    let ok = [update(1, SwState::Running)];
    let mut t = HealthTracker::default();
    assert!(!t.observe(&cfg, &ok, WINDOW, T0));
    assert!(t.observe(&cfg, &ok, WINDOW, T0 + WINDOW));
    // The store write failed: not recorded, so asked again.
    assert!(t.observe(&cfg, &ok, WINDOW, T0 + WINDOW + SEC));
    t.promoted(1);
    assert!(!t.observe(&cfg, &ok, WINDOW, T0 + WINDOW + 2 * SEC));
}

#[test]
fn known_good_window_resets_on_a_new_config() {
    let apps = vec![app(1)];
    let ok = [update(1, SwState::Running)];
    let gen = |generation| ConfigInEffect {
        generation,
        apps: &apps,
        rejected: 0,
    };
    let mut t = HealthTracker::default();
    assert!(!t.observe(&gen(1), &ok, WINDOW, T0));
    assert!(t.observe(&gen(1), &ok, WINDOW, T0 + WINDOW));
    t.promoted(1);
    // Generation 2 arrives (healthy all along): a whole new window.
    t.config_changed();
    assert_eq!(t.healthy_since, None);
    let at = T0 + WINDOW + MIN;
    assert!(!t.observe(&gen(2), &ok, WINDOW, at));
    assert!(!t.observe(&gen(2), &ok, WINDOW, at + WINDOW - 1));
    assert!(t.observe(&gen(2), &ok, WINDOW, at + WINDOW));
    t.promoted(2);
    assert!(!t.observe(&gen(2), &ok, WINDOW, at + 2 * WINDOW));
    // A config accepted before the window ended (same generation re-sent
    // or not) restarts it too.
    let mut t = HealthTracker::default();
    assert!(!t.observe(&gen(3), &ok, WINDOW, T0));
    t.config_changed();
    assert!(!t.observe(&gen(3), &ok, WINDOW, T0 + WINDOW));
    assert!(t.observe(&gen(3), &ok, WINDOW, T0 + 2 * WINDOW));
}

fn with_image(n: u32, image: &str) -> outpost_api::AppConfig {
    let mut a = app(n);
    a.image = image.into();
    a
}

#[test]
fn image_gc_keeps_current_applied_and_known_good_images() {
    let current = vec![with_image(1, "a:2"), with_image(2, "b:1")];
    let mut history = History::default();
    // App 1 still runs a:1 (the change to a:2 waits for a purge); app 3 was
    // removed from the config but its record is not gone yet.
    for (n, applied) in [(1, Some("a:1")), (3, Some("c:1")), (4, None)] {
        history.apps.insert(
            uuid(n),
            AppRecord {
                applied: applied.map(|i| with_image(n, i)),
                ..AppRecord::default()
            },
        );
    }
    let rollback = vec![with_image(1, "a:0"), with_image(5, "e:1")];
    let set = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    let cases = [
        (KnownGood::None, set(&["a:1", "a:2", "b:1", "c:1"])),
        (
            KnownGood::Apps(&rollback),
            set(&["a:0", "a:1", "a:2", "b:1", "c:1", "e:1"]),
        ),
        (KnownGood::Unreadable, None),
    ];
    for (known_good, want) in cases {
        assert_eq!(
            images_to_keep(&current, &history, known_good),
            want,
            "{known_good:?}"
        );
    }
    // Nothing at all: keep nothing (GC may delete every unused image).
    assert_eq!(
        images_to_keep(&[], &History::default(), KnownGood::None),
        Some(BTreeSet::new())
    );
}
