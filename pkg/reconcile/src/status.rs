//! The planner's status for one app: what `plan` reports and the decision
//! for one app fills in. A leaf, so both depend on it and not on each other.

use outpost_api::{BackoffStatus, ErrorDescription, SwState};
use serde::{Deserialize, Serialize};

/// The planner's part of an app's status (the agent adds names, task
/// details and metrics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatusUpdate {
    /// App UUID.
    pub uuid: String,
    /// State as of this plan (see the crate doc for transitional states).
    pub state: SwState,
    /// Current error, if any.
    pub error: Option<ErrorDescription>,
    /// Restart-policy backoff, while the policy is counting failures.
    pub backoff: Option<BackoffStatus>,
    /// Times (re)started since created.
    pub restarts: u32,
    /// Informational text: pending version, changes shadowed by an error,
    /// a clean exit waiting for its restart, a rejected duplicate entry.
    pub note: Option<String>,
}
