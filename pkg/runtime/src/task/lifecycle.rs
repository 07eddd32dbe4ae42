//! Container and task verbs: create, start, graceful stop, kill, wait,
//! delete, pause, resume.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, KillRequest, PauseTaskRequest, ResumeTaskRequest, StartRequest, WaitRequest,
};
use oci_spec::runtime::Spec;
use prost_types::Any;

use super::options::{RuncOptions, RUNC_SHIM};
use super::state::{get, TaskStatus};
use crate::client::{Containerd, SNAPSHOTTER};
use crate::error::{Result, RuntimeError};

/// Type URL containerd expects for a runtime spec in a container record.
pub const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// How a container is created.
#[derive(Clone, Debug)]
pub struct ContainerRequest<'a> {
    /// Container and task ID.
    pub id: &'a str,
    /// Image name.
    pub image: &'a str,
    /// Writable snapshot key.
    pub snapshot_key: &'a str,
    /// Labels tying the container to its app.
    pub labels: HashMap<String, String>,
    /// The runtime spec.
    pub spec: &'a Spec,
    /// Shim options (binary and state root).
    pub options: RuncOptions,
}

/// Creates the container record (no task yet).
pub async fn create_container(
    c: &Containerd,
    lease: Option<&str>,
    r: ContainerRequest<'_>,
) -> Result<()> {
    let spec = serde_json::to_vec(r.spec).map_err(|e| RuntimeError::Spec {
        task: r.id.to_owned(),
        problem: e.to_string(),
    })?;
    let container = Container {
        id: r.id.to_owned(),
        labels: r.labels,
        image: r.image.to_owned(),
        runtime: Some(ContainerRuntime {
            name: RUNC_SHIM.to_owned(),
            options: Some(r.options.to_any()),
        }),
        spec: Some(Any {
            type_url: SPEC_TYPE.to_owned(),
            value: spec,
        }),
        snapshotter: SNAPSHOTTER.to_owned(),
        snapshot_key: r.snapshot_key.to_owned(),
        ..Default::default()
    };
    let msg = CreateContainerRequest {
        container: Some(container),
    };
    let req = match lease {
        Some(l) => c.req_leased(msg, l),
        None => c.req(msg),
    };
    c.containers()
        .create(req)
        .await
        .map_err(|s| RuntimeError::api("containers.Create", r.id, s))?;
    Ok(())
}

/// Creates the task with stdout/stderr going to the given paths (files, or
/// FIFOs whose read end is already open). The rootfs is mounted by the
/// caller at the spec's absolute `root.path`, so no mounts are passed.
pub async fn create_task(
    c: &Containerd,
    id: &str,
    stdout: &Path,
    stderr: &Path,
    options: &RuncOptions,
) -> Result<u32> {
    let r = c
        .tasks()
        .create(c.req(CreateTaskRequest {
            container_id: id.to_owned(),
            stdout: stdout.display().to_string(),
            stderr: stderr.display().to_string(),
            options: Some(options.to_any()),
            ..Default::default()
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Create", id, s))?;
    Ok(r.into_inner().pid)
}

/// Starts a created task (or exec process).
pub async fn start(c: &Containerd, id: &str, exec_id: &str) -> Result<u32> {
    let r = c
        .tasks()
        .start(c.req(StartRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Start", id, s))?;
    Ok(r.into_inner().pid)
}

/// Sends `signal` to the init process (`all`: to every process of the task).
pub async fn kill(c: &Containerd, id: &str, signal: i32, all: bool) -> Result<()> {
    c.tasks()
        .kill(c.req(KillRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
            signal: signal as u32,
            all,
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Kill", id, s))?;
    Ok(())
}

/// Waits for the task (or exec process) to exit; returns its exit status.
pub async fn wait(c: &Containerd, id: &str, exec_id: &str) -> Result<u32> {
    let r = c
        .tasks()
        .wait(c.req(WaitRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Wait", id, s))?;
    Ok(r.into_inner().exit_status)
}

/// How a graceful stop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopOutcome {
    /// Exit status of the init process.
    pub exit_status: u32,
    /// True when the grace period ran out and SIGKILL was needed.
    pub killed: bool,
}

/// Graceful stop (an Outpost improvement over EVE's immediate SIGKILL): the
/// stop signal to init, up to `grace` for it to exit, then SIGKILL to all.
/// A task that is not running returns at once.
pub async fn stop(c: &Containerd, id: &str, signal: i32, grace: Duration) -> Result<StopOutcome> {
    let Some(state) = get(c, id).await? else {
        return Ok(StopOutcome {
            exit_status: 0,
            killed: false,
        });
    };
    match state.status {
        TaskStatus::Stopped => {
            return Ok(StopOutcome {
                exit_status: state.exit_status,
                killed: false,
            });
        }
        TaskStatus::Created => {
            // Never started: nothing to be graceful with.
            let _ = kill(c, id, libc::SIGKILL, true).await;
            return Ok(StopOutcome {
                exit_status: 137,
                killed: true,
            });
        }
        TaskStatus::Paused | TaskStatus::Pausing => {
            // A frozen task cannot handle the signal; thaw it first.
            resume(c, id).await?;
        }
        _ => {}
    }
    let waiter = {
        let c = c.clone();
        let id = id.to_owned();
        tokio::spawn(async move { wait(&c, &id, "").await })
    };
    if let Err(e) = kill(c, id, signal, false).await {
        if !e.is_not_found() {
            waiter.abort();
            return Err(e);
        }
    }
    let mut waiter = waiter;
    match tokio::time::timeout(grace, &mut waiter).await {
        Ok(joined) => {
            let exit_status =
                joined.map_err(|e| RuntimeError::Instance(format!("wait task: {e}")))??;
            Ok(StopOutcome {
                exit_status,
                killed: false,
            })
        }
        Err(_) => {
            tracing::info!(
                task = id,
                grace_ms = grace.as_millis() as u64,
                "grace period over; SIGKILL"
            );
            kill(c, id, libc::SIGKILL, true)
                .await
                .or_else(ignore_not_found)?;
            let exit_status = match tokio::time::timeout(Duration::from_secs(15), waiter).await {
                Ok(joined) => {
                    joined.map_err(|e| RuntimeError::Instance(format!("wait task: {e}")))??
                }
                Err(_) => {
                    return Err(RuntimeError::Timeout {
                        task: id.to_owned(),
                        what: "exit after SIGKILL",
                        secs: 15,
                    })
                }
            };
            Ok(StopOutcome {
                exit_status,
                killed: true,
            })
        }
    }
}

fn ignore_not_found(e: RuntimeError) -> Result<()> {
    if e.is_not_found() {
        Ok(())
    } else {
        Err(e)
    }
}

/// Deletes the task (it must have exited); returns its exit status, or
/// `None` when there was no task.
pub async fn delete_task(c: &Containerd, id: &str) -> Result<Option<u32>> {
    match c
        .tasks()
        .delete(c.req(DeleteTaskRequest {
            container_id: id.to_owned(),
        }))
        .await
    {
        Ok(r) => Ok(Some(r.into_inner().exit_status)),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(RuntimeError::api("tasks.Delete", id, s)),
    }
}

/// Deletes the container record (idempotent).
pub async fn delete_container(c: &Containerd, id: &str) -> Result<()> {
    match c
        .containers()
        .delete(c.req(DeleteContainerRequest { id: id.to_owned() }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(RuntimeError::api("containers.Delete", id, s)),
    }
}

/// Freezes the task.
pub async fn pause(c: &Containerd, id: &str) -> Result<()> {
    c.tasks()
        .pause(c.req(PauseTaskRequest {
            container_id: id.to_owned(),
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Pause", id, s))?;
    Ok(())
}

/// Thaws the task.
pub async fn resume(c: &Containerd, id: &str) -> Result<()> {
    c.tasks()
        .resume(c.req(ResumeTaskRequest {
            container_id: id.to_owned(),
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Resume", id, s))?;
    Ok(())
}
