//! Task state and its mapping to EVE's SwState (EVE-FACTS §6).

use containerd_client::services::v1::GetRequest;
use containerd_client::types::v1::Status;
use outpost_api::SwState;

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};

/// What containerd says about a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// containerd's status.
    pub status: TaskStatus,
    /// Init PID (0 once stopped).
    pub pid: u32,
    /// Exit status (meaningful when stopped).
    pub exit_status: u32,
}

/// containerd task status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Pausing.
    Pausing,
    /// Paused.
    Paused,
    /// Stopped (exited).
    Stopped,
    /// containerd does not know.
    Unknown,
}

impl TaskState {
    /// EVE's mapping: created→INSTALLED, running→RUNNING, pausing→PAUSING,
    /// paused→PAUSED, stopped 0→HALTED, stopped ≠0→BROKEN, unknown→UNKNOWN.
    pub fn sw_state(&self) -> SwState {
        match self.status {
            TaskStatus::Created => SwState::Installed,
            TaskStatus::Running => SwState::Running,
            TaskStatus::Pausing => SwState::Pausing,
            TaskStatus::Paused => SwState::Paused,
            TaskStatus::Stopped if self.exit_status == 0 => SwState::Halted,
            TaskStatus::Stopped => SwState::Broken,
            TaskStatus::Unknown => SwState::Unknown,
        }
    }

    /// EVE's error text for a broken task.
    pub fn error_text(&self) -> Option<String> {
        (self.sw_state() == SwState::Broken)
            .then(|| format!("task broke with exit status {}", self.exit_status))
    }
}

/// The state of task `id`; `None` when there is no task (EVE: UNKNOWN, not an error).
pub async fn get(c: &Containerd, id: &str) -> Result<Option<TaskState>> {
    let r = c
        .tasks()
        .get(c.req(GetRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        }))
        .await;
    let p = match r {
        Ok(r) => r.into_inner().process,
        Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
        Err(s) => return Err(RuntimeError::api("tasks.Get", id, s)),
    };
    Ok(p.map(|p| TaskState {
        status: match Status::try_from(p.status).unwrap_or(Status::Unknown) {
            Status::Created => TaskStatus::Created,
            Status::Running => TaskStatus::Running,
            Status::Pausing => TaskStatus::Pausing,
            Status::Paused => TaskStatus::Paused,
            Status::Stopped => TaskStatus::Stopped,
            Status::Unknown => TaskStatus::Unknown,
        },
        pid: p.pid,
        exit_status: p.exit_status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eve_state_mapping() {
        let s = |status, exit_status| {
            TaskState {
                status,
                pid: 0,
                exit_status,
            }
            .sw_state()
        };
        assert_eq!(s(TaskStatus::Created, 0), SwState::Installed);
        assert_eq!(s(TaskStatus::Running, 0), SwState::Running);
        assert_eq!(s(TaskStatus::Pausing, 0), SwState::Pausing);
        assert_eq!(s(TaskStatus::Paused, 0), SwState::Paused);
        assert_eq!(s(TaskStatus::Stopped, 0), SwState::Halted);
        assert_eq!(s(TaskStatus::Stopped, 3), SwState::Broken);
        assert_eq!(s(TaskStatus::Unknown, 0), SwState::Unknown);
        let broken = TaskState {
            status: TaskStatus::Stopped,
            pid: 0,
            exit_status: 3,
        };
        assert_eq!(
            broken.error_text().unwrap(),
            "task broke with exit status 3"
        );
    }
}
