//! Where an app's task writes its output: files, or memlogd FIFOs.

use std::path::{Path, PathBuf};

use crate::error::{Result, RuntimeError};

/// Where an app's task writes its output. Both paths must exist: the shim
/// opens them for writing and does not create them (files are appended to;
/// FIFOs need their read end open already).
#[derive(Clone, Debug)]
pub struct TaskIo {
    /// stdout path (a memlogd FIFO on a device).
    pub stdout: PathBuf,
    /// stderr path.
    pub stderr: PathBuf,
}

impl TaskIo {
    /// The task's memlogd FIFOs (`<fifo_dir>/guest_vm-<task>.log` and
    /// `guest_vm_err-<task>.log`), created if needed and handed to memlogd
    /// unless it already reads them (a FIFO made now is always handed over,
    /// see [`memlogd::ensure_task_logs`]). The shim then writes straight into
    /// memlogd: no agent process is in the data path, so an agent crash
    /// never stalls the app's output. Blocking (socket I/O).
    pub fn memlogd(
        log_socket: &Path,
        query_socket: &Path,
        fifo_dir: &Path,
        task_id: &str,
    ) -> Result<TaskIo> {
        std::fs::create_dir_all(fifo_dir).map_err(|e| RuntimeError::io("creating", fifo_dir, e))?;
        let f = memlogd::ensure_task_logs(log_socket, query_socket, fifo_dir, task_id).map_err(
            |e| RuntimeError::Instance(format!("attaching task {task_id} to memlogd: {e}")),
        )?;
        Ok(TaskIo {
            stdout: f.stdout,
            stderr: f.stderr,
        })
    }
}
