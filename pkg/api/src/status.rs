//! Status reported for apps (EVE: `AppInstanceStatus` / `DomainStatus`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Lifecycle state with EVE's SwState numbers, so controllers that know EVE
/// read the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SwState {
    /// Created, not started (containerd task `created`).
    Installed,
    /// Being started.
    Booting,
    /// Task running.
    Running,
    /// Being paused.
    Pausing,
    /// Task paused (frozen).
    Paused,
    /// Being stopped.
    Halting,
    /// Stopped cleanly (exit 0) or on purpose.
    Halted,
    /// Stopped with a non-zero exit, or failed to start.
    Broken,
    /// No task known.
    Unknown,
    /// Outpost: image being fetched.
    Downloading,
    /// Outpost: gave up after the restart policy's last attempt.
    Failed,
}

impl SwState {
    /// EVE's numeric value (Outpost-only states use numbers EVE leaves free).
    pub fn number(self) -> u32 {
        match self {
            SwState::Installed => 111,
            SwState::Booting => 114,
            SwState::Running => 115,
            SwState::Pausing => 116,
            SwState::Paused => 117,
            SwState::Halting => 118,
            SwState::Halted => 119,
            SwState::Broken => 120,
            SwState::Unknown => 121,
            SwState::Downloading => 105,
            SwState::Failed => 130,
        }
    }

    /// The upper-case name, as EVE prints it.
    pub fn name(self) -> &'static str {
        match self {
            SwState::Installed => "INSTALLED",
            SwState::Booting => "BOOTING",
            SwState::Running => "RUNNING",
            SwState::Pausing => "PAUSING",
            SwState::Paused => "PAUSED",
            SwState::Halting => "HALTING",
            SwState::Halted => "HALTED",
            SwState::Broken => "BROKEN",
            SwState::Unknown => "UNKNOWN",
            SwState::Downloading => "DOWNLOADING",
            SwState::Failed => "FAILED",
        }
    }
}

impl fmt::Display for SwState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How bad an error is, as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected to clear on its own.
    Notice,
    /// Retried for a while (>10 retries or >1 h).
    Warning,
    /// Retried for long (>20 retries or >10 h).
    Error,
}

impl Severity {
    /// EVE's escalation: warning after >10 retries or >1 h, error after >20
    /// retries or >10 h; whichever of count and age is worse wins.
    pub fn escalated(retries: u32, age: Duration) -> Severity {
        if retries > 20 || age > Duration::from_secs(10 * 3600) {
            Severity::Error
        } else if retries > 10 || age > Duration::from_secs(3600) {
            Severity::Warning
        } else {
            Severity::Notice
        }
    }
}

/// An error on an object, with what the controller needs to judge it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDescription {
    /// What went wrong, naming the object.
    pub message: String,
    /// Current severity (escalates with retries and age).
    pub severity: Severity,
    /// When this error was first seen.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// When it was last seen.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// How many times the failing step has been retried.
    pub retries: u32,
    /// What makes the agent try again (e.g. "restart counter change", "in 40s").
    pub retry_condition: String,
}

/// The task-level part of status (EVE: `DomainStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainStatus {
    /// containerd container/task ID `<uuid>.<version>.<app_num>`.
    pub task_id: String,
    /// Init process PID on the host, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Exit status of the last run, once it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    /// When the current run started.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// Which OCI runtime runs it.
    pub runtime: String,
    /// Memory limit from the cgroup, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    /// Addresses on the app's interfaces (`<network uuid>=<ip>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
}

/// Restart-policy backoff state, visible so an operator knows what comes next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackoffStatus {
    /// Consecutive failed runs counted by the policy.
    pub attempts: u32,
    /// The policy's limit (0 = unlimited).
    pub max_attempts: u32,
    /// When the next start is due, if one is planned.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub next_start: Option<OffsetDateTime>,
}

/// Progress of an image download (state DOWNLOADING).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadStatus {
    /// Bytes fetched.
    pub done: u64,
    /// Bytes to fetch (0 until the manifest is read).
    pub total: u64,
}

/// Everything reported about one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// App UUID.
    pub uuid: String,
    /// Display name.
    pub display_name: String,
    /// Config version in effect.
    pub version: String,
    /// Image reference.
    pub image: String,
    /// Current state.
    pub state: SwState,
    /// Whether the config wants it running.
    pub activated: bool,
    /// How many times the agent (re)started it since it was created.
    pub restarts: u32,
    /// Task details when a container exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainStatus>,
    /// Restart backoff, when the policy is counting failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffStatus>,
    /// Current error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDescription>,
    /// Whether a VNC password is in effect (never the password itself).
    pub vnc_password_set: bool,
    /// Image download in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadStatus>,
    /// An operator's local override in force (`outpost stop|start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_override: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_eve() {
        let table = [
            (SwState::Installed, 111),
            (SwState::Booting, 114),
            (SwState::Running, 115),
            (SwState::Pausing, 116),
            (SwState::Paused, 117),
            (SwState::Halting, 118),
            (SwState::Halted, 119),
            (SwState::Broken, 120),
            (SwState::Unknown, 121),
        ];
        for (s, n) in table {
            assert_eq!(s.number(), n, "{s}");
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
    }

    #[test]
    fn severity_escalates_by_count_or_age() {
        let h = |n: u64| Duration::from_secs(3600 * n);
        let cases = [
            (0, h(0), Severity::Notice),
            (10, h(1), Severity::Notice),
            (11, h(0), Severity::Warning),
            (0, h(1) + Duration::from_secs(1), Severity::Warning),
            (20, h(10), Severity::Warning),
            (21, h(0), Severity::Error),
            (0, h(10) + Duration::from_secs(1), Severity::Error),
        ];
        for (retries, age, want) in cases {
            assert_eq!(
                Severity::escalated(retries, age),
                want,
                "{retries} retries, {age:?}"
            );
        }
    }
}
