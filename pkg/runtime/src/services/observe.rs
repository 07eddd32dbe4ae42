//! Listing the services' containers and tasks with state, PID, uptime,
//! exit status and resource use.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::{ListContainersRequest, ListTasksRequest};
use containerd_client::types::v1::{Process, Status};

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};
use crate::task::{metrics, TaskStatus};

/// One service: its container and, when there is one, its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Container ID (the service name in linuxkit images).
    pub name: String,
    /// Image the container was made from (empty for `ctr run --config`).
    pub image: String,
    /// Task status; `None` when the container has no task.
    pub status: Option<TaskStatus>,
    /// Init PID (0 when stopped or no task).
    pub pid: u32,
    /// When the init process started (unknown when not running).
    pub started_at: Option<SystemTime>,
    /// Exit status, when stopped.
    pub exit_status: Option<u32>,
    /// When it exited, when stopped.
    pub exited_at: Option<SystemTime>,
    /// Memory in use, bytes (from the task's cgroup metrics).
    pub memory_bytes: Option<u64>,
    /// CPU time used, nanoseconds (from the task's cgroup metrics).
    pub cpu_ns: Option<u64>,
    /// Where the task's stdout goes (a FIFO path or a `binary://` log URI).
    pub stdout: String,
    /// Where the task's stderr goes.
    pub stderr: String,
    /// The task has a terminal.
    pub terminal: bool,
}

impl ServiceInfo {
    /// True when the task runs (or is paused: still alive).
    pub fn is_alive(&self) -> bool {
        matches!(
            self.status,
            Some(TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing)
        )
    }

    /// Lower-case state name as `ctr tasks ls` prints it (`RUNNING`,
    /// `STOPPED`, …), or `NO TASK`.
    pub fn state_name(&self) -> &'static str {
        match self.status {
            None => "NO TASK",
            Some(TaskStatus::Created) => "CREATED",
            Some(TaskStatus::Running) => "RUNNING",
            Some(TaskStatus::Pausing) => "PAUSING",
            Some(TaskStatus::Paused) => "PAUSED",
            Some(TaskStatus::Stopped) => "STOPPED",
            Some(TaskStatus::Unknown) => "UNKNOWN",
        }
    }
}

/// Every container in the handle's namespace with its task, sorted by name.
/// Metrics are read for running tasks only; a metrics failure leaves them
/// `None` (the list is still useful).
pub async fn list(c: &Containerd) -> Result<Vec<ServiceInfo>> {
    let containers = c
        .containers()
        .list(c.req(ListContainersRequest { filters: vec![] }))
        .await
        .map_err(|s| RuntimeError::api("containers.List", c.namespace(), s))?
        .into_inner()
        .containers;
    let mut tasks: HashMap<String, Process> = c
        .tasks()
        .list(c.req(ListTasksRequest {
            filter: String::new(),
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.List", c.namespace(), s))?
        .into_inner()
        .tasks
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let mut out = Vec::with_capacity(containers.len());
    for ct in containers {
        let task = tasks.remove(&ct.id);
        out.push(info(c, ct.id, ct.image, task).await);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Service `name`, or `None` when there is no such container.
pub async fn get(c: &Containerd, name: &str) -> Result<Option<ServiceInfo>> {
    Ok(list(c).await?.into_iter().find(|s| s.name == name))
}

async fn info(c: &Containerd, name: String, image: String, task: Option<Process>) -> ServiceInfo {
    let Some(p) = task else {
        return ServiceInfo {
            name,
            image,
            status: None,
            pid: 0,
            started_at: None,
            exit_status: None,
            exited_at: None,
            memory_bytes: None,
            cpu_ns: None,
            stdout: String::new(),
            stderr: String::new(),
            terminal: false,
        };
    };
    let status = match Status::try_from(p.status).unwrap_or(Status::Unknown) {
        Status::Created => TaskStatus::Created,
        Status::Running => TaskStatus::Running,
        Status::Pausing => TaskStatus::Pausing,
        Status::Paused => TaskStatus::Paused,
        Status::Stopped => TaskStatus::Stopped,
        Status::Unknown => TaskStatus::Unknown,
    };
    let running = matches!(
        status,
        TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing
    );
    let m = if running {
        metrics(c, &name).await.ok()
    } else {
        None
    };
    let stopped = status == TaskStatus::Stopped;
    ServiceInfo {
        started_at: running.then(|| process_start(p.pid)).flatten(),
        exit_status: stopped.then_some(p.exit_status),
        exited_at: p
            .exited_at
            .filter(|_| stopped)
            .and_then(|t| UNIX_EPOCH.checked_add(Duration::new(t.seconds.max(0) as u64, 0))),
        memory_bytes: m.map(|m| m.memory_usage),
        cpu_ns: m.map(|m| m.cpu_ns),
        pid: if running { p.pid } else { 0 },
        status: Some(status),
        name,
        image,
        stdout: p.stdout,
        stderr: p.stderr,
        terminal: p.terminal,
    }
}

/// When `pid` started: field 22 of `/proc/<pid>/stat` (clock ticks after
/// boot) plus the boot time from `/proc/stat`.
fn process_start(pid: u32) -> Option<SystemTime> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ: the kernel's ABI fixes it at 100 for /proc on every
    // architecture Outpost runs on.
    let hz = 100;
    UNIX_EPOCH.checked_add(Duration::from_millis(btime * 1000 + ticks * 1000 / hz))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_start_is_in_the_past() {
        let t = process_start(std::process::id()).unwrap();
        assert!(t <= SystemTime::now());
        assert!(t > SystemTime::now() - Duration::from_secs(3600));
    }
}
