//! Output of a restarted service whose previous task left no log URI:
//! FIFOs memlogd reads under logwrite's names (`<svc>.out` for stdout,
//! `<svc>` for stderr), the same streams init's `svclog` writes.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use outpost_runtime::services::ServiceIo;

/// memlogd stream of service `name`'s stdout.
pub fn stdout_stream(name: &str) -> String {
    format!("{name}.out")
}

/// memlogd stream of service `name`'s stderr.
pub fn stderr_stream(name: &str) -> String {
    name.to_owned()
}

/// Makes (or reuses) the FIFOs of service `name` in `dir` and makes sure
/// memlogd reads them; `None` (output discarded) when memlogd is not there.
pub fn service_io(
    log_socket: &Path,
    query_socket: &Path,
    dir: &Path,
    name: &str,
) -> Option<ServiceIo> {
    let active = memlogd::active_sources(query_socket).ok()?;
    std::fs::create_dir_all(dir).ok()?;
    let mut paths = Vec::new();
    for (suffix, stream) in [("out", stdout_stream(name)), ("err", stderr_stream(name))] {
        let path = dir.join(format!("svc.{name}.{suffix}.log"));
        let existed = path.exists();
        if !existed {
            nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).ok()?;
        }
        // A FIFO memlogd already reads keeps its reader; otherwise hand
        // memlogd an O_RDWR fd, so the FIFO never lacks a reader.
        if !existed || !active.contains(&stream) {
            let fd = open(&path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
            memlogd::register_fds(log_socket, &stream, &[fd.as_fd()]).ok()?;
        }
        paths.push(path.display().to_string());
    }
    Some(ServiceIo {
        stdout: paths[0].clone(),
        stderr: paths[1].clone(),
    })
}
