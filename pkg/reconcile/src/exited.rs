//! The restart policy applied to a task that ended: stopped with an exit
//! status, or vanished right after its start.

use outpost_api::{AppConfig, RestartMode, RestartPolicy, SwState};

use crate::action::Action;
use crate::clock::rfc3339;
use crate::diff::who;
use crate::history::{AppRecord, ErrorKind};
use crate::observed::Observed;
use crate::policy::{count_exit, wants_restart, Tunables, Verdict};
use crate::severity::{set_error, Level, NewError};
use crate::step::{waiting, Step};

/// The restart policy on a stopped task.
pub(crate) fn stopped(
    app: &AppConfig,
    cur: &Observed,
    rec: &mut AppRecord,
    now_ms: u64,
    tunables: &Tunables,
) -> Step {
    let policy = &app.restart_policy;
    let clean = cur.exited_cleanly();
    let ended = if clean {
        "task exited with status 0".to_owned()
    } else {
        format!("task broke with exit status {}", cur.exit_text())
    };
    let unhandled = rec.started_ms.is_some()
        || (wants_restart(policy.mode, cur.exit_status) && rec.next_start_ms.is_none());
    if unhandled {
        match count_exit(rec, policy, cur.exit_status, now_ms, tunables) {
            Verdict::Stay => {
                rec.was_active = false;
                if clean {
                    rec.clear_error(ErrorKind::Exit);
                } else {
                    let why = format!("{}: {ended}", who(app));
                    exit_error(
                        rec,
                        why,
                        0,
                        "restart_counter or purge_counter change",
                        Level::Terminal,
                        now_ms,
                    );
                }
            }
            Verdict::GiveUp => give_up(app, rec, &format!("{}: {ended}", who(app)), now_ms),
            Verdict::RestartAt(at) if !clean => {
                let why = format!("{}: {ended}", who(app));
                let cond = restart_text(rec.attempts, policy.max_attempts, at);
                let retries = rec.attempts - 1;
                exit_error(rec, why, retries, &cond, Level::Escalating, now_ms);
            }
            Verdict::RestartAt(_) => rec.clear_error(ErrorKind::Exit),
        }
    }
    if rec.failed {
        return Step::new(None, SwState::Failed);
    }
    let Some(at) = rec.next_start_ms else {
        return Step::new(None, cur.state());
    };
    let mut step = match waiting(rec, now_ms) {
        Some(until) => Step::waiting(cur.state(), until),
        None => Step::new(
            Some(Action::Restart {
                uuid: app.uuid.clone(),
                task_id: cur.task_id.clone(),
            }),
            cur.state(),
        ),
    };
    if clean && rec.retry_of.is_none() {
        step.notes.push(format!(
            "{ended}; {}",
            restart_text(rec.attempts, policy.max_attempts, at)
        ));
    }
    step
}

/// A task that disappeared within `backoff_initial_ms` of its start (a
/// shim that keeps dying) counts as a failed run, whatever the policy's
/// mode, so its recreation backs off instead of looping. A task missing
/// later than that (a reboot, a shim that died after a while) is recreated
/// at once and not counted.
pub(crate) fn vanished(
    app: &AppConfig,
    rec: &mut AppRecord,
    started: u64,
    now_ms: u64,
    tunables: &Tunables,
) {
    let policy = RestartPolicy {
        mode: RestartMode::Always,
        ..app.restart_policy
    };
    rec.started_ms = Some(started);
    let ended = format!(
        "{}: task disappeared {} ms after its start",
        who(app),
        now_ms.saturating_sub(started)
    );
    match count_exit(rec, &policy, None, now_ms, tunables) {
        Verdict::RestartAt(at) => {
            let cond = restart_text(rec.attempts, policy.max_attempts, at);
            let retries = rec.attempts - 1;
            exit_error(rec, ended, retries, &cond, Level::Escalating, now_ms);
        }
        Verdict::GiveUp | Verdict::Stay => give_up(app, rec, &ended, now_ms),
    }
}

/// The policy gave up: FAILED until the config changes.
fn give_up(app: &AppConfig, rec: &mut AppRecord, ended: &str, now_ms: u64) {
    rec.was_active = false;
    rec.failed_config = Some(app.clone());
    let why = format!(
        "{ended}; restart policy gave up after {} restarts",
        rec.attempts
    );
    let cond = "restart_counter, purge_counter or config change";
    let retries = rec.attempts;
    exit_error(rec, why, retries, cond, Level::Terminal, now_ms);
}

fn exit_error(
    rec: &mut AppRecord,
    message: String,
    retries: u32,
    retry_condition: &str,
    level: Level,
    now_ms: u64,
) {
    let new = NewError {
        kind: ErrorKind::Exit,
        message,
        retries,
        retry_condition,
        level,
    };
    set_error(rec, new, now_ms);
}

/// `restart 2 of 10 at 2024-01-01T00:00:20Z` (`of unlimited` for 0).
fn restart_text(attempt: u32, max: u32, at_ms: u64) -> String {
    let of = if max == 0 {
        "unlimited".to_owned()
    } else {
        max.to_string()
    };
    format!("restart {attempt} of {of} at {}", rfc3339(at_ms))
}
