//! `record_outcome`: what the executor reports after each action.

use crate::action::{Action, ActionKind};
use crate::clock::rfc3339;
use crate::diff::who;
use crate::history::{AppRecord, ErrorKind, History};
use crate::job::{ActionFailure, FailureClass};
use crate::policy::Tunables;
use crate::severity::{set_error, Level, NewError};

/// To be called by the executor after it carried out `action` (success or
/// failure), so the record reflects it; persist `history` afterwards.
///
/// * Success of a start-type action: the planned `target` becomes `applied`,
///   `started_ms = now`, a pending retry and an action error are cleared;
///   `restarts` grows for Restart, Replace, Purge and a re-Create.
/// * Success of a Halt of the app's own container: restart-policy state and
///   FAILED are reset (deactivating is how an operator clears them too).
/// * Success of a Remove: the record is dropped.
/// * Failure: an action error naming the app and step, `retries` counting
///   consecutive failures (first failure = 0) with `first_seen` kept and
///   severity escalated; the next attempt waits `backoff_delay(retries + 1)`.
///   Failed starts retry forever (capped backoff): the restart policy's
///   `max_attempts` counts runs that ended, not starts that never happened.
pub fn record_outcome(
    history: &mut History,
    uuid: &str,
    action: &Action,
    outcome: Result<(), String>,
    now_ms: u64,
    tunables: &Tunables,
) {
    let kind = action.kind();
    if outcome.is_ok() && kind == ActionKind::Remove {
        history.apps.remove(uuid);
        return;
    }
    let rec = history.apps.entry(uuid.to_owned()).or_default();
    match outcome {
        Ok(()) if kind == ActionKind::Halt => {
            let own = rec
                .applied
                .as_ref()
                .is_none_or(|a| action.task_id() == Some(a.task_id().as_str()));
            if own {
                rec.reset_policy();
                rec.started_ms = None;
                rec.was_active = false;
            } else if rec.retry_of == Some(ActionKind::Halt) {
                rec.retry_of = None;
                rec.next_start_ms = None;
                rec.clear_error(ErrorKind::Action);
            }
        }
        Ok(()) => {
            let recreated = rec.applied.is_some();
            if let Some(target) = rec.target.take() {
                rec.applied = Some(target);
            }
            rec.started_ms = Some(now_ms);
            rec.next_start_ms = None;
            rec.retry_of = None;
            rec.was_active = true;
            rec.clear_error(ErrorKind::Action);
            let counts = match kind {
                ActionKind::Create => recreated,
                ActionKind::Start => false,
                _ => true,
            };
            if counts {
                rec.restarts = rec.restarts.saturating_add(1);
            }
        }
        Err(reason) => record_failure(
            rec,
            uuid,
            action,
            &reason,
            Level::Escalating,
            now_ms,
            tunables,
        ),
    }
}

/// [`record_outcome`] for a failure that only an operator can end (an
/// image the registry does not have or refuses, a digest mismatch): the
/// same error, retry and backoff, but severity error at once instead of
/// escalating with retries and age. The step is still retried, because the
/// registry or the config may be fixed meanwhile.
pub fn record_permanent_failure(
    history: &mut History,
    uuid: &str,
    action: &Action,
    reason: &str,
    now_ms: u64,
    tunables: &Tunables,
) {
    let rec = history.apps.entry(uuid.to_owned()).or_default();
    record_failure(rec, uuid, action, reason, Level::Terminal, now_ms, tunables);
}

/// [`record_outcome`] for a failed action whose error says whether
/// retrying can help: a [`FailureClass::Permanent`] one is recorded like
/// [`record_permanent_failure`], a transient one with the usual backoff.
pub fn record_failure_of(
    history: &mut History,
    uuid: &str,
    action: &Action,
    failure: &ActionFailure,
    now_ms: u64,
    tunables: &Tunables,
) {
    match failure.class {
        FailureClass::Permanent => {
            record_permanent_failure(history, uuid, action, &failure.reason, now_ms, tunables)
        }
        FailureClass::Transient => record_outcome(
            history,
            uuid,
            action,
            Err(failure.reason.clone()),
            now_ms,
            tunables,
        ),
    }
}

fn record_failure(
    rec: &mut AppRecord,
    uuid: &str,
    action: &Action,
    reason: &str,
    level: Level,
    now_ms: u64,
    tunables: &Tunables,
) {
    let kind = action.kind();
    let retries = match (&rec.error, rec.error_kind) {
        (Some(e), Some(ErrorKind::Action)) => e.retries.saturating_add(1),
        _ => 0,
    };
    let at = now_ms.saturating_add(tunables.backoff_delay(retries.saturating_add(1)));
    rec.next_start_ms = Some(at);
    rec.retry_of = Some(kind);
    if kind.starts() {
        rec.started_ms = None;
    }
    let name = rec
        .config_to_apply()
        .map_or_else(|| format!("app {uuid}"), who);
    let task = action
        .task_id()
        .map(|t| format!(" of task {t}"))
        .unwrap_or_default();
    let cond = format!("retry at {}", rfc3339(at));
    let new = NewError {
        kind: ErrorKind::Action,
        message: format!("{name}: {}{task} failed: {reason}", kind.verb()),
        retries,
        retry_condition: &cond,
        level,
    };
    set_error(rec, new, now_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_api::AppConfig;

    fn cfg() -> AppConfig {
        serde_json::from_value(serde_json::json!({
            "uuid": "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10",
            "version": "1",
            "display_name": "gw",
            "app_num": 1,
            "image": "hello:1",
        }))
        .unwrap()
    }

    const U: &str = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10";

    #[test]
    fn successes_move_the_target_and_count_restarts() {
        let task = cfg().task_id();
        let t = || task.clone();
        // (action, had an applied config, restarts after)
        let cases = [
            (Action::Create { uuid: U.into() }, false, 0),
            (Action::Create { uuid: U.into() }, true, 1),
            (
                Action::Start {
                    uuid: U.into(),
                    task_id: t(),
                },
                true,
                0,
            ),
            (
                Action::Restart {
                    uuid: U.into(),
                    task_id: t(),
                },
                true,
                1,
            ),
            (
                Action::Replace {
                    uuid: U.into(),
                    old_task_id: t(),
                },
                true,
                1,
            ),
            (
                Action::Purge {
                    uuid: U.into(),
                    task_id: None,
                    old_purge_counter: 0,
                },
                true,
                1,
            ),
        ];
        for (action, had, restarts) in cases {
            let mut h = History::default();
            let rec = h.apps.entry(U.into()).or_default();
            rec.applied = had.then(cfg);
            rec.target = Some(cfg());
            rec.next_start_ms = Some(5);
            record_outcome(&mut h, U, &action, Ok(()), 1_000, &Tunables::default());
            let rec = &h.apps[U];
            assert_eq!(rec.restarts, restarts, "{action:?}");
            assert_eq!(rec.applied, Some(cfg()), "{action:?}");
            assert_eq!(rec.target, None);
            assert_eq!((rec.started_ms, rec.next_start_ms), (Some(1_000), None));
            assert!(rec.was_active);
        }
    }

    #[test]
    fn a_halt_resets_only_for_the_apps_own_container() {
        let busy = || AppRecord {
            applied: Some(cfg()),
            attempts: 4,
            failed: true,
            was_active: true,
            started_ms: Some(1),
            ..AppRecord::default()
        };
        // (halted task, reset?)
        let cases = [(cfg().task_id(), true), (format!("{U}.0.1"), false)];
        for (task_id, reset) in cases {
            let mut h = History::default();
            h.apps.insert(U.into(), busy());
            let halt = Action::Halt {
                uuid: U.into(),
                task_id,
            };
            record_outcome(&mut h, U, &halt, Ok(()), 1_000, &Tunables::default());
            let rec = &h.apps[U];
            assert_eq!(!rec.failed && rec.attempts == 0 && !rec.was_active, reset);
            assert_eq!(rec.failed, !reset);
        }
    }

    #[test]
    fn a_failure_names_the_app_step_and_task_and_backs_off() {
        let mut h = History::default();
        h.apps.entry(U.into()).or_default().applied = Some(cfg());
        let restart = Action::Restart {
            uuid: U.into(),
            task_id: cfg().task_id(),
        };
        let t = Tunables::default();
        record_outcome(&mut h, U, &restart, Err("shim: EOF".into()), 0, &t);
        record_outcome(&mut h, U, &restart, Err("shim: EOF".into()), 10_000, &t);
        let rec = &h.apps[U];
        let e = rec.error.as_ref().unwrap();
        assert_eq!(
            e.message,
            format!(
                "app gw ({U}): restart of task {} failed: shim: EOF",
                cfg().task_id()
            )
        );
        assert_eq!(e.retries, 1);
        assert_eq!(crate::clock::millis(e.first_seen), 0);
        assert_eq!(rec.next_start_ms, Some(10_000 + 20_000));
        assert_eq!(rec.retry_of, Some(ActionKind::Restart));
        assert_eq!(e.retry_condition, "retry at 1970-01-01T00:00:30Z");
    }

    #[test]
    fn a_removal_drops_the_record() {
        let mut h = History::default();
        h.apps.entry(U.into()).or_default().restarts = 2;
        let rm = Action::Remove {
            uuid: U.into(),
            task_id: "t".into(),
            purge_counter: 0,
        };
        record_outcome(&mut h, U, &rm, Ok(()), 0, &Tunables::default());
        assert!(h.apps.is_empty());
    }

    #[test]
    fn a_permanent_failure_is_an_error_at_once_and_still_backs_off() {
        let mut h = History::default();
        let create = Action::Create { uuid: U.into() };
        let t = Tunables::default();
        record_permanent_failure(&mut h, U, &create, "image r/x:1 not found", 0, &t);
        record_permanent_failure(&mut h, U, &create, "image r/x:1 not found", 10_000, &t);
        let rec = &h.apps[U];
        let e = rec.error.as_ref().unwrap();
        assert_eq!(e.severity, outpost_api::Severity::Error);
        assert_eq!(e.retries, 1);
        assert_eq!(rec.next_start_ms, Some(10_000 + 20_000));
        assert_eq!(rec.retry_of, Some(ActionKind::Create));
        // A transient failure of the same step starts at notice.
        let mut h = History::default();
        record_outcome(&mut h, U, &create, Err("connection reset".into()), 0, &t);
        let e = h.apps[U].error.clone().unwrap();
        assert_eq!(e.severity, outpost_api::Severity::Notice);
    }
}
