//! restart_counter, purge_counter, changes that wait for them, versions.

mod common;

use common::*;
use outpost_api::{AppConfig, RuntimeClass, Severity, SwState};
use outpost_reconcile::{datetime, Action};

#[test]
fn any_restart_counter_change_restarts_on_the_same_volume() {
    // (applied, desired, restarts?)
    let cases = [
        (0, 1, true),
        (5, 3, true),
        (2, 2, false),
        (u64::MAX, 0, true),
    ];
    for (applied, desired, restarts) in cases {
        let mut a = app(1);
        a.restart_counter = applied;
        let mut w = World::running(vec![a]);
        w.cfg(1).restart_counter = desired;
        let p = w.step();
        let want = if restarts {
            vec![Action::Restart {
                uuid: uuid(1),
                task_id: app(1).task_id(),
            }]
        } else {
            vec![]
        };
        assert_eq!(p.actions, want, "{applied} → {desired}");
        assert_eq!(
            w.rec(1).restarts,
            u32::from(restarts),
            "{applied} → {desired}"
        );
        assert_eq!(w.volumes.len(), 1);
        assert!(w.volumes.contains(&(uuid(1), 0)), "same volume data");
        let p = w.plan();
        assert!(
            p.actions.is_empty(),
            "{applied} → {desired}: {:?}",
            p.actions
        );
        assert_eq!(state(&p, 1), SwState::Running);
    }
}

#[test]
fn a_purge_counter_change_purges_and_supersedes_restart() {
    // (restart_counter, purge_counter, action, volume generations after)
    let cases = [
        (0, 0, None, vec![0]),
        (1, 0, Some("restart 1"), vec![0]),
        (0, 1, Some("purge 1"), vec![1]),
        (1, 1, Some("purge 1"), vec![1]),
        (0, 3, Some("purge 1"), vec![3]),
    ];
    for (rc, pc, want, gens) in cases {
        let mut w = World::running(vec![app(1)]);
        w.cfg(1).restart_counter = rc;
        w.cfg(1).purge_counter = pc;
        let p = w.step();
        let got = names(&p.actions);
        assert_eq!(got.first().map(String::as_str), want, "rc {rc} pc {pc}");
        assert_eq!(got.len(), usize::from(want.is_some()));
        if let Some(Action::Purge {
            task_id,
            old_purge_counter,
            ..
        }) = p.actions.first()
        {
            assert_eq!(task_id.as_deref(), Some(app(1).task_id().as_str()));
            assert_eq!(*old_purge_counter, 0);
        }
        let got_gens: Vec<u64> = w.volumes.iter().map(|(_, g)| *g).collect();
        assert_eq!(got_gens, gens, "rc {rc} pc {pc}");
        assert_eq!(w.obs(1).purge_counter, pc);
        assert!(w.plan().actions.is_empty(), "rc {rc} pc {pc}");
        let applied = w.rec(1).applied.clone().unwrap();
        assert_eq!((applied.restart_counter, applied.purge_counter), (rc, pc));
    }
}

#[test]
fn a_purge_requested_while_the_device_was_off_happens_at_boot() {
    let mut w = World::running(vec![app(1)]);
    // Off: containers are gone after the reboot (e.g. a wiped containerd),
    // the persisted history and volumes remain; the new config wants a purge.
    w.observed.clear();
    w.cfg(1).purge_counter = 1;
    let p = w.step();
    assert_eq!(
        p.actions,
        [Action::Purge {
            uuid: uuid(1),
            task_id: None,
            old_purge_counter: 0
        }]
    );
    assert_eq!(w.volumes.iter().collect::<Vec<_>>(), [&(uuid(1), 1)]);
    assert!(w.plan().actions.is_empty());
}

#[test]
fn a_missing_container_is_recreated_on_its_volume_without_purge() {
    let mut w = World::running(vec![app(1)]);
    w.observed.clear();
    let p = w.step();
    assert_eq!(names(&p.actions), ["create 1"]);
    assert_eq!(w.volumes.len(), 1);
}

type Edit = fn(&mut AppConfig);

#[test]
fn changes_that_need_a_counter_wait_with_an_error() {
    // (edit, message fragment, counter that applies it)
    let cases: [(Edit, &str, &str); 7] = [
        (
            |a| a.resources.memory_kib = 131072,
            "needs restart: resources.memory_kib 65536 → 131072 changed; change restart_counter to apply",
            "restart",
        ),
        (|a| a.resources.vcpus = 2, "needs restart: resources.vcpus 1 → 2", "restart"),
        (
            |a| {
                a.env.insert("TOKEN".into(), "s3cr3t".into());
            },
            "needs restart: env TOKEN changed",
            "restart",
        ),
        (
            |a| a.runtime = RuntimeClass::Runsc,
            "needs restart: runtime runc → runsc",
            "restart",
        ),
        (
            |a| a.volumes[0].mount_dir = Some("/srv".into()),
            "needs purge: volume data (11111111-0000-4000-8000-000000000001) (mount_dir) changed; change purge_counter to apply",
            "purge",
        ),
        (
            |a| a.volumes.clear(),
            "needs purge: volume data (11111111-0000-4000-8000-000000000001) removed",
            "purge",
        ),
        (|a| a.image = "hello:2".into(), "needs purge: image hello:1 → hello:2", "purge"),
    ];
    for (edit, fragment, counter) in cases {
        let mut w = World::running(vec![app(1)]);
        edit(w.cfg(1));
        let p = w.step();
        assert!(p.actions.is_empty(), "{fragment}: {:?}", p.actions);
        assert_eq!(state(&p, 1), SwState::Running, "app left as it is");
        let err = status(&p, 1)
            .error
            .clone()
            .unwrap_or_else(|| panic!("{fragment}: no error"));
        assert!(err.message.contains(fragment), "{}", err.message);
        assert!(err.message.contains(&uuid(1)) && err.message.contains("app1"));
        assert!(!err.message.contains("s3cr3t"));
        assert_eq!(err.severity, Severity::Notice);
        assert_eq!(w.rec(1).applied, Some(app(1)), "not applied yet");

        // The wrong counter does not apply a purge-class change.
        if counter == "purge" {
            w.cfg(1).restart_counter += 1;
            assert_eq!(names(&w.step().actions), ["restart 1"]);
            let err = status(&w.plan(), 1).error.clone().unwrap();
            assert!(
                err.message.contains(fragment),
                "still pending: {}",
                err.message
            );
            w.cfg(1).purge_counter += 1;
        } else {
            w.cfg(1).restart_counter += 1;
        }
        let done = w.converge();
        // A new spec needs a new container (same task ID, same volume).
        let want = if counter == "restart" {
            "replace 1"
        } else {
            "purge 1"
        };
        assert_eq!(names(&done), [want], "{fragment}");
        assert_eq!(w.obs(1).task_id, app(1).task_id());
        let p = w.plan();
        assert_eq!(status(&p, 1).error, None, "{fragment}");
        assert_eq!(w.rec(1).applied.as_ref(), Some(&w.desired[0]), "{fragment}");
    }
}

#[test]
fn a_pending_change_error_keeps_first_seen_escalates_and_clears_when_reverted() {
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).env.insert("A".into(), "1".into());
    let start = w.now;
    // (elapsed, severity)
    let cases = [
        (0, Severity::Notice),
        (HOUR, Severity::Notice),
        (2 * HOUR, Severity::Warning),
        (11 * HOUR, Severity::Error),
    ];
    for (elapsed, want) in cases {
        w.now = start + elapsed;
        let p = w.step();
        let err = status(&p, 1).error.clone().unwrap();
        assert_eq!(err.severity, want, "{elapsed}");
        assert_eq!(err.first_seen, datetime(start));
        assert_eq!(err.last_seen, datetime(start + elapsed));
        assert_eq!(
            err.retry_condition,
            "restart_counter or purge_counter change"
        );
    }
    w.cfg(1).env.clear();
    assert_eq!(status(&w.step(), 1).error, None);
}

#[test]
fn an_interface_change_waits_for_the_next_restart_as_a_notice() {
    let itf = |ip: &str| {
        serde_json::from_value(serde_json::json!([
            {"network": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e", "ip": ip}
        ]))
        .unwrap()
    };
    let mut a = app(1);
    a.interfaces = itf("10.213.1.5");
    let mut w = World::running(vec![a]);
    w.cfg(1).interfaces = itf("10.213.1.6");
    let start = w.now;
    // Staged, not a fault: the app keeps running and the notice never
    // escalates, however long the change waits.
    for elapsed in [0, 2 * HOUR, 11 * HOUR] {
        w.now = start + elapsed;
        let p = w.step();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(state(&p, 1), SwState::Running);
        let err = status(&p, 1).error.clone().unwrap();
        assert_eq!(err.severity, Severity::Notice, "after {elapsed} ms");
        assert!(
            err.message
                .contains("interfaces (eth0) changed; applied at the next restart"),
            "{}",
            err.message
        );
        assert_eq!(err.first_seen, datetime(start));
        assert_eq!(
            err.retry_condition,
            "restart_counter or purge_counter change"
        );
        assert_eq!(
            w.rec(1).applied.as_ref().unwrap().interfaces,
            itf("10.213.1.5"),
            "not applied yet"
        );
    }
    // The restart counter applies it: a new container (new spec).
    w.cfg(1).restart_counter = 1;
    assert_eq!(names(&w.converge()), ["replace 1"]);
    assert_eq!(
        w.rec(1).applied.as_ref().unwrap().interfaces,
        itf("10.213.1.6")
    );
    assert_eq!(status(&w.plan(), 1).error, None);
    // A purge applies it too.
    w.cfg(1).interfaces = itf("10.213.1.7");
    assert!(status(&w.step(), 1).error.is_some());
    w.cfg(1).purge_counter = 1;
    assert_eq!(names(&w.converge()), ["purge 1"]);
    assert_eq!(
        w.rec(1).applied.as_ref().unwrap().interfaces,
        itf("10.213.1.7")
    );
    assert_eq!(status(&w.plan(), 1).error, None);
}

#[test]
fn a_restart_counter_change_applies_restart_changes_and_keeps_needs_purge() {
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).env.insert("A".into(), "1".into());
    w.cfg(1).image = "hello:2".into();
    w.cfg(1).restart_counter = 1;
    assert_eq!(names(&w.converge()), ["replace 1"]);
    let applied = w.rec(1).applied.clone().unwrap();
    assert_eq!(applied.env.len(), 1);
    assert_eq!(applied.image, "hello:1");
    let err = status(&w.plan(), 1).error.clone().unwrap();
    assert!(
        err.message.contains("needs purge: image"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("needs restart"), "{}", err.message);
    assert_eq!(err.retry_condition, "purge_counter change");
    w.cfg(1).purge_counter = 1;
    assert_eq!(names(&w.converge()), ["purge 1"]);
    assert_eq!(w.rec(1).applied.as_ref().unwrap().image, "hello:2");
    assert_eq!(status(&w.plan(), 1).error, None);
}

#[test]
fn new_versions_are_applied_through_the_counters() {
    // (restart bump, purge bump, action kind, note expected)
    let cases = [
        (false, false, None, true),
        (true, false, Some("replace 1"), false),
        (false, true, Some("purge 1"), false),
        (true, true, Some("purge 1"), false),
    ];
    for (rb, pb, want, note) in cases {
        let mut w = World::running(vec![app(1)]);
        w.cfg(1).version = "2".into();
        w.cfg(1).restart_counter += u64::from(rb);
        w.cfg(1).purge_counter += u64::from(pb);
        let p = w.step();
        assert_eq!(
            names(&p.actions).first().map(String::as_str),
            want,
            "{rb} {pb}"
        );
        if let Some(Action::Replace { old_task_id, .. }) = p.actions.first() {
            assert_eq!(old_task_id, &app(1).task_id());
        }
        let p = w.plan();
        assert!(p.actions.is_empty());
        let s = status(&p, 1);
        assert_eq!(s.state, SwState::Running);
        assert_eq!(s.error, None, "a version change alone is not an error");
        let want_task = if want.is_some() { "2" } else { "1" };
        assert_eq!(w.observed.len(), 1);
        assert_eq!(w.obs(1).task_id, format!("{}.{want_task}.1", uuid(1)));
        if note {
            let n = s.note.clone().unwrap();
            assert_eq!(
                n,
                "version 1 → 2 waits for a restart_counter or purge_counter change"
            );
        } else {
            assert_eq!(s.note, None);
        }
        let gen = u64::from(pb);
        assert!(w.volumes.contains(&(uuid(1), gen)) && w.volumes.len() == 1);
    }
}

#[test]
fn an_app_number_change_replaces_the_container() {
    let mut w = World::running(vec![app(1)]);
    w.cfg(1).app_num = 9;
    assert!(w.step().actions.is_empty());
    w.cfg(1).restart_counter = 1;
    assert_eq!(names(&w.converge()), ["replace 1"]);
    assert_eq!(w.obs(1).task_id, format!("{}.1.9", uuid(1)));
}

#[test]
fn live_fields_take_effect_without_an_action() {
    let edits: [Edit; 4] = [
        |a| a.display_name = "renamed".into(),
        |a| a.stop_timeout = std::time::Duration::from_secs(30),
        |a| a.restart_policy.max_attempts = 3,
        |a| a.restart_policy.mode = outpost_api::RestartMode::Never,
    ];
    for edit in edits {
        let mut w = World::running(vec![app(1)]);
        edit(w.cfg(1));
        let p = w.plan();
        assert!(p.actions.is_empty());
        assert_eq!(status(&p, 1).error, None);
        assert_eq!(status(&p, 1).note, None);
    }
}
