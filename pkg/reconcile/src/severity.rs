//! Errors on an app's status: EVE's severity escalation (warning after >10
//! retries or >1 h, error after >20 retries or >10 h), with `first_seen`
//! kept while the same kind of condition persists.

use outpost_api::{ErrorDescription, Severity};

use crate::clock;
use crate::history::{AppRecord, ErrorKind};

/// How an error's severity is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// `Severity::escalated(retries, age)`.
    Escalating,
    /// Terminal conditions (FAILED, BROKEN with no restart, a rejected
    /// config): an operator must act, so it is an error at once.
    Terminal,
    /// A staged change waiting for its counter (interfaces): a notice that
    /// does not escalate (the caller skips [`age_error`] for it).
    Notice,
}

/// What to record as an app's error.
pub(crate) struct NewError<'a> {
    /// Origin, which decides what clears it.
    pub kind: ErrorKind,
    /// Message naming the app.
    pub message: String,
    /// Times the failing step has been retried.
    pub retries: u32,
    /// What makes the agent try again.
    pub retry_condition: &'a str,
    /// How severity is chosen.
    pub level: Level,
}

/// Sets `rec.error`, keeping `first_seen` when the previous error was of the
/// same kind, and escalating severity by retries and age.
pub(crate) fn set_error(rec: &mut AppRecord, new: NewError<'_>, now_ms: u64) {
    let now = clock::datetime(now_ms);
    let first_seen = match (&rec.error, rec.error_kind) {
        (Some(old), Some(kind)) if kind == new.kind => old.first_seen.min(now),
        _ => now,
    };
    let severity = match new.level {
        Level::Terminal => Severity::Error,
        Level::Notice => Severity::Notice,
        Level::Escalating => Severity::escalated(new.retries, clock::age(first_seen, now_ms)),
    };
    rec.error = Some(ErrorDescription {
        message: new.message,
        severity,
        first_seen,
        last_seen: now,
        retries: new.retries,
        retry_condition: new.retry_condition.to_owned(),
    });
    rec.error_kind = Some(new.kind);
}

/// Re-escalates an existing error as it ages (severity never goes down).
pub(crate) fn age_error(rec: &mut AppRecord, now_ms: u64) {
    if let Some(err) = &mut rec.error {
        let by_age = Severity::escalated(err.retries, clock::age(err.first_seen, now_ms));
        err.severity = err.severity.max(by_age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: ErrorKind, retries: u32) -> NewError<'static> {
        NewError {
            kind,
            message: format!("{kind:?} {retries}"),
            retries,
            retry_condition: "later",
            level: Level::Escalating,
        }
    }

    #[test]
    fn first_seen_is_kept_for_the_same_kind_only() {
        let mut rec = AppRecord::default();
        set_error(&mut rec, err(ErrorKind::Action, 0), 1_000);
        set_error(&mut rec, err(ErrorKind::Action, 1), 5_000);
        let e = rec.error.clone().unwrap();
        assert_eq!(clock::millis(e.first_seen), 1_000);
        assert_eq!(clock::millis(e.last_seen), 5_000);
        assert_eq!(e.retries, 1);
        set_error(&mut rec, err(ErrorKind::Exit, 0), 9_000);
        assert_eq!(clock::millis(rec.error.unwrap().first_seen), 9_000);
    }

    #[test]
    fn severity_escalates_with_age_and_never_drops() {
        let h = 3_600_000;
        let mut rec = AppRecord::default();
        set_error(&mut rec, err(ErrorKind::Config, 0), 0);
        let sev = |r: &AppRecord| r.error.as_ref().unwrap().severity;
        assert_eq!(sev(&rec), Severity::Notice);
        let cases = [
            (h, Severity::Notice),
            (h + 1, Severity::Warning),
            (10 * h + 1, Severity::Error),
            (0, Severity::Error),
        ];
        for (at, want) in cases {
            age_error(&mut rec, at);
            assert_eq!(sev(&rec), want, "at {at}");
        }
        let mut terminal = err(ErrorKind::Exit, 0);
        terminal.level = Level::Terminal;
        set_error(&mut rec, terminal, 0);
        assert_eq!(sev(&rec), Severity::Error);
    }
}
