//! One branch's outcome of the decision for an app, shared by the decision
//! (`decide`) and its exited-container branch (`exited`). A leaf.

use outpost_api::SwState;

use crate::action::Action;
use crate::history::AppRecord;

/// The outcome of one branch of the decision.
pub(crate) struct Step {
    /// The start-type action, if any.
    pub action: Option<Action>,
    /// State to report.
    pub state: SwState,
    /// When to plan again for this app.
    pub wake: Option<u64>,
    /// Status notes.
    pub notes: Vec<String>,
}

impl Step {
    /// A step reporting `state`, with `action` if any.
    pub fn new(action: Option<Action>, state: SwState) -> Self {
        Step {
            action,
            state,
            wake: None,
            notes: Vec::new(),
        }
    }

    /// No action before `until`.
    pub fn waiting(state: SwState, until: u64) -> Self {
        Step {
            wake: Some(until),
            ..Step::new(None, state)
        }
    }
}

/// The earliest start time, when it is still ahead.
pub(crate) fn waiting(rec: &AppRecord, now_ms: u64) -> Option<u64> {
    rec.next_start_ms.filter(|at| *at > now_ms)
}
