//! Where task output goes: memlogd FIFOs, so the shim writes straight into
//! memlogd and an agent crash never stalls an app's stdout.

use std::os::fd::AsFd;
use std::process::Stdio;
use std::sync::Arc;

use outpost_runtime::instance::LogSink;
use outpost_runtime::{Layout, TaskIo};

use crate::daemon::snapshot::MemlogdPaths;

/// FIFOs for `task_id`, attached to memlogd unless it already reads them.
/// Without memlogd the task writes to /dev/null (the app still runs;
/// `outpost check` reports memlogd down).
pub async fn task_io(memlogd: &MemlogdPaths, layout: &Layout, task_id: &str) -> TaskIo {
    let (log, query, dir, id) = (
        memlogd.log_socket.clone(),
        memlogd.query_socket.clone(),
        layout.fifos(),
        task_id.to_owned(),
    );
    let attached = tokio::task::spawn_blocking(move || {
        TaskIo::memlogd(&log, &query, &dir, &id).map_err(|e| e.to_string())
    })
    .await;
    match attached.unwrap_or_else(|e| Err(e.to_string())) {
        Ok(io) => io,
        Err(e) => {
            tracing::warn!(task = task_id, error = %e, "memlogd unavailable; task output discarded");
            TaskIo {
                stdout: "/dev/null".into(),
                stderr: "/dev/null".into(),
            }
        }
    }
}

/// Removes the FIFOs of every task of app `uuid` (task IDs are
/// `<uuid>.<version>.<app_num>`), whichever version made them: for an app
/// that left the config. memlogd then releases its fds.
pub fn remove_app_io(layout: &Layout, uuid: &str) -> Result<(), memlogd::Error> {
    let dir = layout.fifos();
    let prefix = format!("{uuid}.");
    for task_id in memlogd::fifo_task_ids(&dir)? {
        if task_id.starts_with(&prefix) {
            memlogd::remove_task_logs(&dir, &task_id)?;
            tracing::debug!(task = %task_id, "removed log FIFOs");
        }
    }
    Ok(())
}

/// A log sink for a daemon the agent runs (the user containerd): a pipe
/// whose read end memlogd holds as stream `name`, so the daemon's output
/// survives the agent; falls back to `fallback` (a file truncated at each
/// start) when memlogd is not there.
pub fn daemon_sink(memlogd: &MemlogdPaths, name: &str, fallback: std::path::PathBuf) -> LogSink {
    let (sock, name) = (memlogd.log_socket.clone(), name.to_owned());
    Arc::new(move || {
        // Close-on-exec, so no other child spawned meanwhile inherits the pipe.
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        match memlogd::register_fds(&sock, &name, &[r.as_fd()]) {
            Ok(()) => Ok(Stdio::from(w)),
            Err(_) => Ok(Stdio::from(std::fs::File::create(&fallback)?)),
        }
    })
}
