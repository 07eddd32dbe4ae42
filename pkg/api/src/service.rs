//! Status of the device's system services (the system containerd's
//! `services.linuxkit` namespace), as `outpost svc` shows them and the
//! device info report carries them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One device service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Container ID in `services.linuxkit` (the linuxkit service name).
    pub name: String,
    /// Task state as `ctr tasks ls` prints it (`RUNNING`, `STOPPED`, …),
    /// `NO TASK`, or `MISSING` for a declared service without a container.
    pub state: String,
    /// The device image declares it (only declared services are restarted).
    pub declared: bool,
    /// Init PID (0 when not running).
    pub pid: u32,
    /// When the running task started.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// Exit status of a stopped task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<u32>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// CPU time used, nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<u64>,
    /// Restarts done by the agent since it started.
    pub restarts: u32,
    /// Milliseconds until the next restart attempt, while backing off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_ms: Option<u64>,
    /// The last restart failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ServiceStatus {
    /// True when the task runs.
    pub fn is_running(&self) -> bool {
        self.state == "RUNNING"
    }
}
