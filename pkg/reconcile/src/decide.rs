//! The decision for one app of the desired config: which action (if any),
//! which state and error to report, and when to look again.

use outpost_api::{AppConfig, BackoffStatus, SwState};

use crate::action::{Action, ActionKind};
use crate::clock;
use crate::diff;
use crate::exited;
use crate::history::{AppRecord, ErrorKind};
use crate::observed::{pick_current, Observed, Phase};
use crate::policy::Tunables;
use crate::severity::{age_error, set_error, Level, NewError};
use crate::status::AppStatusUpdate;
use crate::step::{waiting, Step};

/// What the planner decided for one desired app.
pub(crate) struct Decision {
    /// Containers to take down (the app is inactive, or stale duplicates).
    pub halts: Vec<Action>,
    /// The start-type action, if any.
    pub start: Option<Action>,
    /// The app's status after this plan.
    pub status: AppStatusUpdate,
    /// When a pending backoff ends, if the app waits for one.
    pub wake_at_ms: Option<u64>,
}

/// Decides for `app`, given its containers (`mine`) and its record, which
/// is updated in place.
pub(crate) fn desired_app(
    app: &AppConfig,
    mine: &[&Observed],
    rec: &mut AppRecord,
    now_ms: u64,
    tunables: &Tunables,
) -> Decision {
    rec.clear_error(ErrorKind::Rejected);
    let (cur, stale) = pick_current(&app.task_id(), mine);
    adopt(rec, app, cur);
    let mut halts = Vec::new();
    let mut step = if app.activate {
        halts.extend(stale.iter().map(|o| halt(o)));
        active(app, cur, rec, now_ms, tunables)
    } else {
        inactive(app, mine, rec, now_ms, &mut halts)
    };
    let staged = app.activate && report_pending_changes(app, rec, &mut step.notes, now_ms);
    if !staged {
        age_error(rec, now_ms);
    }
    let note = (!step.notes.is_empty()).then(|| step.notes.join("; "));
    rec.pending_note.clone_from(&note);
    let backoff = (app.activate && (rec.attempts > 0 || rec.failed || rec.next_start_ms.is_some()))
        .then(|| BackoffStatus {
            attempts: rec.attempts,
            max_attempts: app.restart_policy.max_attempts,
            next_start: rec.next_start_ms.map(clock::datetime),
        });
    Decision {
        halts,
        start: step.action,
        status: AppStatusUpdate {
            uuid: app.uuid.clone(),
            state: step.state,
            error: rec.error.clone(),
            backoff,
            restarts: rec.restarts,
            note,
        },
        wake_at_ms: step.wake,
    }
}

/// Brings the record in line with a container it does not describe: a
/// creation, replacement or purge whose outcome was never recorded (agent
/// crash), or a history that was lost. containerd's labels (version, app
/// number, purge generation) are the truth; the rest is taken from the
/// planned target, else the desired config.
fn adopt(rec: &mut AppRecord, app: &AppConfig, cur: Option<&Observed>) {
    let Some(cur) = cur else { return };
    let matches =
        |c: &AppConfig| c.task_id() == cur.task_id && c.purge_counter == cur.purge_counter;
    match &rec.applied {
        None => {
            let mut adopted = rec.target.take().unwrap_or_else(|| app.clone());
            adopted.version.clone_from(&cur.version);
            adopted.app_num = cur.app_num;
            adopted.purge_counter = cur.purge_counter;
            rec.applied = Some(adopted);
        }
        Some(applied) if !matches(applied) && rec.target.as_ref().is_some_and(matches) => {
            rec.applied = rec.target.take();
        }
        Some(_) => {}
    }
}

fn halt(o: &Observed) -> Action {
    Action::Halt {
        uuid: o.uuid.clone(),
        task_id: o.task_id.clone(),
    }
}

fn active(
    app: &AppConfig,
    cur: Option<&Observed>,
    rec: &mut AppRecord,
    now_ms: u64,
    tunables: &Tunables,
) -> Step {
    let mut config_changed = false;
    if rec.failed && cur.is_some_and(|o| o.phase == Phase::Running) {
        // Someone started it by hand: it runs, so it is not FAILED any more.
        rec.failed = false;
        rec.failed_config = None;
    }
    if rec.failed && rec.failed_config.as_ref() != Some(app) {
        rec.reset_policy();
        config_changed = true;
    }
    if rec.failed {
        rec.target = None;
        return Step::new(None, SwState::Failed);
    }
    let applied = rec.applied.clone();
    let generation = cur
        .map(|o| o.purge_counter)
        .or(applied.as_ref().map(|a| a.purge_counter));
    if let Some(old) = generation.filter(|g| *g != app.purge_counter) {
        let purge = Action::Purge {
            uuid: app.uuid.clone(),
            task_id: cur.map(|o| o.task_id.clone()),
            old_purge_counter: old,
        };
        return by_config(rec, purge, app.clone(), cur, now_ms);
    }
    let restart = applied
        .as_ref()
        .is_some_and(|a| a.restart_counter != app.restart_counter);
    let uuid = app.uuid.clone();
    match cur {
        None => {
            let target = diff::without_purge_changes(app, applied.as_ref());
            by_config(rec, Action::Create { uuid }, target, None, now_ms)
        }
        Some(o) if restart || config_changed => {
            let target = diff::without_purge_changes(app, applied.as_ref());
            // A new task ID or a new spec needs a new container; a Restart
            // keeps the container and its spec.
            let new_spec = applied
                .as_ref()
                .is_some_and(|a| diff::changes(a, &target).needs_new_spec());
            let action = if o.task_id != target.task_id() || new_spec {
                Action::Replace {
                    uuid,
                    old_task_id: o.task_id.clone(),
                }
            } else {
                Action::Restart {
                    uuid,
                    task_id: o.task_id.clone(),
                }
            };
            by_config(rec, action, target, Some(o), now_ms)
        }
        Some(o) => {
            rec.target = None;
            by_phase(app, o, rec, now_ms, tunables)
        }
    }
}

/// A start-type action that applies a config (`target`). Planning the same
/// target again is a retry and waits for the failure backoff; a new target
/// is a fresh decision and acts at once.
fn by_config(
    rec: &mut AppRecord,
    action: Action,
    target: AppConfig,
    cur: Option<&Observed>,
    now_ms: u64,
) -> Step {
    if rec.target.as_ref() == Some(&target) {
        if let Some(until) = waiting(rec, now_ms) {
            return Step::waiting(cur.map_or(SwState::Broken, Observed::state), until);
        }
    } else {
        rec.reset_policy();
        rec.target = Some(target);
    }
    Step::new(Some(action), cur.map_or(SwState::Booting, Observed::state))
}

/// Nothing in the config asks for a change: follow the task's phase.
fn by_phase(
    app: &AppConfig,
    cur: &Observed,
    rec: &mut AppRecord,
    now_ms: u64,
    tunables: &Tunables,
) -> Step {
    let (uuid, task_id) = (app.uuid.clone(), cur.task_id.clone());
    let gated = |rec: &AppRecord, action: Action| match waiting(rec, now_ms) {
        Some(until) => Step::waiting(cur.state(), until),
        None => Step::new(Some(action), cur.state()),
    };
    match cur.phase {
        Phase::Running => {
            let started = *rec.started_ms.get_or_insert(now_ms);
            if rec.attempts > 0 && now_ms.saturating_sub(started) >= tunables.healthy_reset_ms {
                rec.attempts = 0;
                rec.clear_error(ErrorKind::Exit);
            }
            rec.next_start_ms = None;
            rec.retry_of = None;
            rec.clear_error(ErrorKind::Action);
            rec.was_active = true;
            let mut step = Step::new(None, SwState::Running);
            if rec.attempts > 0 {
                // Plan again when the run becomes healthy, to clear the backoff.
                step.wake = Some(started.saturating_add(tunables.healthy_reset_ms));
            }
            step
        }
        // A pause is an operator's choice: leave it.
        Phase::Pausing | Phase::Paused => Step::new(None, cur.state()),
        Phase::Created => gated(rec, Action::Start { uuid, task_id }),
        Phase::NoTask => {
            if let Some(started) = rec.started_ms.take() {
                let ran = now_ms.saturating_sub(started);
                if ran < tunables.backoff_initial_ms {
                    exited::vanished(app, rec, started, now_ms, tunables);
                } else if ran >= tunables.healthy_reset_ms {
                    rec.attempts = 0;
                    rec.clear_error(ErrorKind::Exit);
                }
            }
            if rec.failed {
                return Step::new(None, SwState::Failed);
            }
            gated(rec, Action::Restart { uuid, task_id })
        }
        Phase::Stopped => exited::stopped(app, cur, rec, now_ms, tunables),
    }
}

fn inactive(
    app: &AppConfig,
    mine: &[&Observed],
    rec: &mut AppRecord,
    now_ms: u64,
    halts: &mut Vec<Action>,
) -> Step {
    rec.target = None;
    rec.clear_error(ErrorKind::Config);
    let generation = mine
        .first()
        .map(|o| o.purge_counter)
        .or(rec.applied.as_ref().map(|a| a.purge_counter));
    let mut step = if mine.is_empty() {
        rec.reset_policy();
        rec.started_ms = None;
        rec.was_active = false;
        Step::new(None, SwState::Halted)
    } else {
        let retrying = rec.retry_of == Some(ActionKind::Halt);
        match waiting(rec, now_ms).filter(|_| retrying) {
            Some(until) => Step::waiting(SwState::Halting, until),
            None => {
                halts.extend(mine.iter().map(|o| halt(o)));
                Step::new(None, SwState::Halting)
            }
        }
    };
    if generation.is_some_and(|g| g != app.purge_counter) {
        step.notes
            .push("purge_counter change applies when the app is activated".into());
    }
    step
}

/// Reports changes that wait for a counter: as the app's error when no
/// failure is being reported, else as a note; a pending version as a note.
/// Returns true when the error is a staged interface change, which stays a
/// notice (it is not a fault and does not escalate).
fn report_pending_changes(
    app: &AppConfig,
    rec: &mut AppRecord,
    notes: &mut Vec<String>,
    now_ms: u64,
) -> bool {
    let Some(effective) = rec.config_to_apply() else {
        rec.clear_error(ErrorKind::Config);
        return false;
    };
    let changes = diff::changes(effective, app);
    if !changes.task_id.is_empty() {
        notes.push(format!(
            "{} waits for a restart_counter or purge_counter change",
            changes.task_id.join(", ")
        ));
    }
    match changes.pending(app) {
        Some(p) if matches!(rec.error_kind, None | Some(ErrorKind::Config)) => {
            let new = NewError {
                kind: ErrorKind::Config,
                message: p.message,
                retries: 0,
                retry_condition: p.condition,
                level: if p.notice {
                    Level::Notice
                } else {
                    Level::Escalating
                },
            };
            set_error(rec, new, now_ms);
            p.notice
        }
        Some(p) => {
            notes.push(p.message);
            false
        }
        None => {
            rec.clear_error(ErrorKind::Config);
            false
        }
    }
}
