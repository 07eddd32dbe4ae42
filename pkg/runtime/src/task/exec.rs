//! Running a command inside an app's task (`outpost exec`, checks).

use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, GetContainerRequest,
};
use prost_types::Any;

use super::lifecycle::{start, wait};
use crate::client::Containerd;
use crate::error::{Result, RuntimeError};

/// Type URL of an OCI process spec.
pub const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// Most output kept from each stream of an exec (the rest is cut and flagged).
pub const MAX_EXEC_OUTPUT: usize = 1 << 20;

/// What an exec produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status.
    pub exit_status: u32,
    /// Captured stdout (at most [`MAX_EXEC_OUTPUT`] bytes).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most [`MAX_EXEC_OUTPUT`] bytes).
    pub stderr: Vec<u8>,
    /// True when output was cut at the bound.
    pub truncated: bool,
}

/// Runs `args` in task `id` with the task's env, cwd and user; output is
/// captured through files under `scratch`; after `timeout` the process is
/// killed and a timeout error returned.
pub async fn exec(
    c: &Containerd,
    id: &str,
    args: &[String],
    scratch: &Path,
    timeout: Duration,
) -> Result<ExecOutput> {
    let container = c
        .containers()
        .get(c.req(GetContainerRequest { id: id.to_owned() }))
        .await
        .map_err(|s| RuntimeError::api("containers.Get", id, s))?
        .into_inner()
        .container
        .ok_or_else(|| RuntimeError::Decode {
            what: "container",
            object: id.to_owned(),
            problem: "empty".into(),
        })?;
    let spec: serde_json::Value = container
        .spec
        .as_ref()
        .map(|s| serde_json::from_slice(&s.value))
        .transpose()
        .map_err(|e| RuntimeError::Decode {
            what: "runtime spec",
            object: id.to_owned(),
            problem: e.to_string(),
        })?
        .unwrap_or_default();
    let mut process = spec.get("process").cloned().unwrap_or_default();
    process["args"] = serde_json::json!(args);
    process["terminal"] = serde_json::json!(false);

    let exec_id = format!("exec-{:08x}", rand::random::<u32>());
    std::fs::create_dir_all(scratch).map_err(|e| RuntimeError::io("creating", scratch, e))?;
    let out = scratch.join(format!("{id}.{exec_id}.out"));
    let err = scratch.join(format!("{id}.{exec_id}.err"));
    for p in [&out, &err] {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(p)
            .map_err(|e| RuntimeError::io("creating exec output", p, e))?;
    }
    let result = async {
        c.tasks()
            .exec(c.req(ExecProcessRequest {
                container_id: id.to_owned(),
                stdin: String::new(),
                stdout: out.display().to_string(),
                stderr: err.display().to_string(),
                terminal: false,
                spec: Some(Any {
                    type_url: PROCESS_TYPE.to_owned(),
                    value: serde_json::to_vec(&process).unwrap_or_default(),
                }),
                exec_id: exec_id.clone(),
            }))
            .await
            .map_err(|s| RuntimeError::api("tasks.Exec", id, s))?;
        let waiter = {
            let (c, id, exec_id) = (c.clone(), id.to_owned(), exec_id.clone());
            tokio::spawn(async move { wait(&c, &id, &exec_id).await })
        };
        start(c, id, &exec_id).await?;
        match tokio::time::timeout(timeout, waiter).await {
            Ok(j) => j.map_err(|e| RuntimeError::Instance(format!("exec wait: {e}")))?,
            Err(_) => {
                let _ = c
                    .tasks()
                    .kill(c.req(containerd_client::services::v1::KillRequest {
                        container_id: id.to_owned(),
                        exec_id: exec_id.clone(),
                        signal: libc::SIGKILL as u32,
                        all: false,
                    }))
                    .await;
                let _ = wait(c, id, &exec_id).await;
                Err(RuntimeError::Timeout {
                    task: id.to_owned(),
                    what: "exec",
                    secs: timeout.as_secs(),
                })
            }
        }
    }
    .await;
    let _ = c
        .tasks()
        .delete_process(c.req(DeleteProcessRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.clone(),
        }))
        .await;
    let (stdout, t1) = read_bounded(&out);
    let (stderr, t2) = read_bounded(&err);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&err);
    Ok(ExecOutput {
        exit_status: result?,
        stdout,
        stderr,
        truncated: t1 || t2,
    })
}

fn read_bounded(path: &Path) -> (Vec<u8>, bool) {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(path) else {
        return (Vec::new(), false);
    };
    let mut buf = Vec::new();
    let _ = f.take(MAX_EXEC_OUTPUT as u64 + 1).read_to_end(&mut buf);
    let cut = buf.len() > MAX_EXEC_OUTPUT;
    buf.truncate(MAX_EXEC_OUTPUT);
    (buf, cut)
}
