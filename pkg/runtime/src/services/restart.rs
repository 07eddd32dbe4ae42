//! Restarting a service's task: stop it (gracefully), delete it, and
//! create a new task from the container's existing spec and snapshot.

use std::time::Duration;

use containerd_client::services::v1::{
    snapshots::MountsRequest, CreateTaskRequest, GetContainerRequest, GetRequest,
};

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};
use crate::task::{delete_task, start, stop};

/// Where a restarted service's output goes when its previous task left no
/// log URI to reuse (paths of FIFOs memlogd reads, or files).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceIo {
    /// stdout path.
    pub stdout: String,
    /// stderr path.
    pub stderr: String,
}

/// Restarts service `name`: the running task gets SIGTERM, then SIGKILL
/// after `grace`; the task is deleted and a new one created from the
/// container's spec (and its snapshot's mounts when it has one) and
/// started. Output keeps the previous task's log URI (`binary://…`,
/// `file://…`: the service's own log set-up, as init gave it); a plain
/// FIFO path is not reused (its reader went with the old `ctr`), and
/// `fallback` is used instead. Returns the new init PID.
pub async fn restart(
    c: &Containerd,
    name: &str,
    grace: Duration,
    fallback: Option<&ServiceIo>,
) -> Result<u32> {
    let previous = match c
        .tasks()
        .get(c.req(GetRequest {
            container_id: name.to_owned(),
            exec_id: String::new(),
        }))
        .await
    {
        Ok(r) => r.into_inner().process,
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => return Err(RuntimeError::api("tasks.Get", name, s)),
    };
    let io = match &previous {
        Some(p) if is_log_uri(&p.stdout) => ServiceIo {
            stdout: p.stdout.clone(),
            stderr: p.stderr.clone(),
        },
        _ => fallback.cloned().unwrap_or_default(),
    };
    if previous.is_some() {
        stop(c, name, libc::SIGTERM, grace).await?;
        delete_task(c, name).await?;
    }
    let container = c
        .containers()
        .get(c.req(GetContainerRequest {
            id: name.to_owned(),
        }))
        .await
        .map_err(|s| RuntimeError::api("containers.Get", name, s))?
        .into_inner()
        .container
        .ok_or_else(|| RuntimeError::Decode {
            what: "container",
            object: name.to_owned(),
            problem: "empty".into(),
        })?;
    let rootfs = if container.snapshot_key.is_empty() {
        // `ctr run --config`: the spec's root.path is an absolute bundle dir.
        Vec::new()
    } else {
        c.snapshots()
            .mounts(c.req(MountsRequest {
                snapshotter: container.snapshotter.clone(),
                key: container.snapshot_key.clone(),
            }))
            .await
            .map_err(|s| RuntimeError::api("snapshots.Mounts", name, s))?
            .into_inner()
            .mounts
    };
    c.tasks()
        .create(c.req(CreateTaskRequest {
            container_id: name.to_owned(),
            rootfs,
            stdout: io.stdout,
            stderr: io.stderr,
            ..Default::default()
        }))
        .await
        .map_err(|s| RuntimeError::api("tasks.Create", name, s))?;
    start(c, name, "").await
}

/// A containerd log URI (`binary://`, `file://`, `fifo://`), as opposed to a
/// bare FIFO path.
pub fn is_log_uri(s: &str) -> bool {
    s.split_once("://")
        .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::is_log_uri;

    #[test]
    fn log_uris_are_told_from_fifo_paths() {
        assert!(is_log_uri(
            "binary:///usr/libexec/outpost/svclog?CONTAINER_ID=x"
        ));
        assert!(is_log_uri("file:///var/log/x"));
        assert!(!is_log_uri("/run/containerd/fifo/123/x-stdout"));
        assert!(!is_log_uri(""));
    }
}
