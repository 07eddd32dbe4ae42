//! Task log FIFOs: created by the agent, handed to memlogd opened `O_RDWR`
//! (so memlogd reads across task restarts), released by unlinking them.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, lstat, Mode, SFlag};

use crate::client::active_sources;
use crate::error::{Error, Result};
use crate::register::{check_name, register_fds};

/// Stream-name prefix of a task's stdout (`guest_vm-<task>`).
pub const STDOUT_STREAM_PREFIX: &str = "guest_vm-";
/// Stream-name prefix of a task's stderr (`guest_vm_err-<task>`).
pub const STDERR_STREAM_PREFIX: &str = "guest_vm_err-";

/// The two FIFOs of a task and the stream names memlogd knows them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFifos {
    /// `<dir>/guest_vm-<task>.log`, the task's stdout.
    pub stdout: PathBuf,
    /// `<dir>/guest_vm_err-<task>.log`, the task's stderr.
    pub stderr: PathBuf,
    /// `guest_vm-<task>`.
    pub stdout_stream: String,
    /// `guest_vm_err-<task>`.
    pub stderr_stream: String,
}

impl TaskFifos {
    fn pairs(&self) -> [(&Path, &str); 2] {
        [
            (&self.stdout, &self.stdout_stream),
            (&self.stderr, &self.stderr_stream),
        ]
    }
}

/// Paths and stream names of `task_id`'s FIFOs in `fifo_dir` (no I/O).
pub fn task_fifos(fifo_dir: &Path, task_id: &str) -> TaskFifos {
    let stdout_stream = format!("{STDOUT_STREAM_PREFIX}{task_id}");
    let stderr_stream = format!("{STDERR_STREAM_PREFIX}{task_id}");
    TaskFifos {
        stdout: fifo_dir.join(format!("{stdout_stream}.log")),
        stderr: fifo_dir.join(format!("{stderr_stream}.log")),
        stdout_stream,
        stderr_stream,
    }
}

/// Creates (or reuses) both FIFOs of `task_id` and hands them to memlogd,
/// unconditionally. Each FIFO is created with mode 0600 (an existing FIFO is
/// reused; an existing non-FIFO is an error), opened `O_RDWR | O_CLOEXEC`,
/// registered, and the agent's own fd is closed. Use [`ensure_task_logs`]
/// when memlogd may already be reading them.
pub fn attach_task_logs(log_socket: &Path, fifo_dir: &Path, task_id: &str) -> Result<TaskFifos> {
    let fifos = checked_fifos(fifo_dir, task_id)?;
    for (path, stream) in fifos.pairs() {
        make_fifo(path)?;
        attach(log_socket, path, stream)?;
    }
    Ok(fifos)
}

/// Like [`attach_task_logs`], but an existing FIFO is registered only when
/// memlogd is not already reading its stream (asked through the stats mode
/// on `query_socket`), so an agent restarting after a crash re-attaches only
/// what memlogd lost (e.g. because memlogd restarted) and never creates
/// duplicate readers.
///
/// A FIFO that does not exist yet is always attached, whatever memlogd
/// lists: a stream of the same name may still be the previous task's,
/// whose FIFO was unlinked and which memlogd drains until its next FIFO
/// check, while the new FIFO has no reader and would block the shim. The
/// new FIFO is made and attached under a staging name
/// (`.<name>.log.new`) and only then linked into place, so the FIFO path
/// never exists without a reader, even if the caller dies half-way; a
/// staging FIFO left by such a death is removed by the next call (memlogd
/// then releases it).
pub fn ensure_task_logs(
    log_socket: &Path,
    query_socket: &Path,
    fifo_dir: &Path,
    task_id: &str,
) -> Result<TaskFifos> {
    let fifos = checked_fifos(fifo_dir, task_id)?;
    let active = active_sources(query_socket)?;
    for (path, stream) in fifos.pairs() {
        let staging = staging_path(path);
        remove_if_exists(&staging)?;
        if exists_as_fifo(path)? {
            if !active.iter().any(|a| a == stream) {
                attach(log_socket, path, stream)?;
            }
        } else {
            publish_attached(log_socket, path, &staging, stream)?;
        }
    }
    Ok(fifos)
}

/// Removes both FIFOs of `task_id` (missing ones are fine), and their
/// staging names. memlogd notices within its FIFO check interval, drains
/// and closes its fds.
pub fn remove_task_logs(fifo_dir: &Path, task_id: &str) -> Result<()> {
    let fifos = task_fifos(fifo_dir, task_id);
    for (path, _) in fifos.pairs() {
        remove_if_exists(&staging_path(path))?;
        remove_if_exists(path)?;
    }
    Ok(())
}

/// The task IDs that have a FIFO (or a staging FIFO) in `fifo_dir`, sorted,
/// each once. A missing directory has none. Lets a caller remove the FIFOs
/// of every task of an app, including those of tasks it no longer knows.
pub fn fifo_task_ids(fifo_dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(fifo_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::ListFifos {
                dir: fifo_dir.to_path_buf(),
                source,
            })
        }
    };
    let mut ids = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::ListFifos {
            dir: fifo_dir.to_path_buf(),
            source,
        })?;
        if let Some(id) = task_id_of(&entry.file_name().to_string_lossy()) {
            ids.insert(id.to_string());
        }
    }
    Ok(ids.into_iter().collect())
}

/// The task ID in a FIFO file name (`guest_vm[_err]-<task>.log`, or its
/// staging name `.guest_vm[_err]-<task>.log.new`).
fn task_id_of(file_name: &str) -> Option<&str> {
    let name = match file_name.strip_prefix('.') {
        Some(staged) => staged.strip_suffix(".new")?,
        None => file_name,
    };
    let stream = name.strip_suffix(".log")?;
    let id = stream
        .strip_prefix(STDOUT_STREAM_PREFIX)
        .or_else(|| stream.strip_prefix(STDERR_STREAM_PREFIX))?;
    (!id.is_empty()).then_some(id)
}

/// `<dir>/.<file>.new`: where a new FIFO waits until memlogd reads it.
fn staging_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.new"))
}

/// Makes a FIFO at `staging`, hands it to memlogd, then links it to `path`
/// (never replacing what is there) and drops the staging name.
fn publish_attached(log_socket: &Path, path: &Path, staging: &Path, stream: &str) -> Result<()> {
    make_fifo(staging)?;
    if let Err(e) = attach(log_socket, staging, stream) {
        let _ = std::fs::remove_file(staging);
        return Err(e);
    }
    let linked = match std::fs::hard_link(staging, path) {
        Ok(()) => Ok(()),
        // Another caller published the FIFO meanwhile: it is attached too,
        // and ours goes (memlogd releases it once the staging name is gone).
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::CreateFifo {
            path: path.to_path_buf(),
            source,
        }),
    };
    remove_if_exists(staging)?;
    linked
}

/// Whether `path` exists (as a FIFO; anything else there is an error).
fn exists_as_fifo(path: &Path) -> Result<bool> {
    match lstat(path) {
        Ok(st) if is_fifo(st.st_mode) => Ok(true),
        Ok(_) => Err(Error::NotAFifo {
            path: path.to_path_buf(),
        }),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::CreateFifo {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::RemoveFifo {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn checked_fifos(fifo_dir: &Path, task_id: &str) -> Result<TaskFifos> {
    if task_id.is_empty() || task_id.contains('/') || task_id == "." || task_id == ".." {
        return Err(Error::InvalidName {
            name: task_id.to_string(),
            reason: "a task id must be non-empty and contain no '/'",
        });
    }
    let fifos = task_fifos(fifo_dir, task_id);
    check_name(&fifos.stderr_stream)?;
    Ok(fifos)
}

/// `mkfifo 0600`, tolerating an existing FIFO.
fn make_fifo(path: &Path) -> Result<()> {
    match nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EEXIST) => match lstat(path) {
            Ok(st) if is_fifo(st.st_mode) => Ok(()),
            Ok(_) => Err(Error::NotAFifo {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(Error::CreateFifo {
                path: path.to_path_buf(),
                source: e.into(),
            }),
        },
        Err(e) => Err(Error::CreateFifo {
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

fn attach(log_socket: &Path, path: &Path, stream: &str) -> Result<()> {
    let open_err = |source: io::Error| Error::OpenFifo {
        path: path.to_path_buf(),
        stream: stream.to_string(),
        source,
    };
    // O_RDWR: never blocks, and memlogd's copy keeps a writer so it sees no
    // EOF between task instances. O_NOFOLLOW: a symlink planted in place of
    // the FIFO is refused.
    let fd: OwnedFd = open(
        path,
        OFlag::O_RDWR | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| open_err(e.into()))?;
    let st = fstat(&fd).map_err(|e| open_err(e.into()))?;
    if !is_fifo(st.st_mode) {
        return Err(Error::NotAFifo {
            path: path.to_path_buf(),
        });
    }
    register_fds(log_socket, stream, &[fd.as_fd()])
    // `fd` is closed here: memlogd holds the only reader now.
}

fn is_fifo(mode: nix::libc::mode_t) -> bool {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFIFO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_eve() {
        let f = task_fifos(Path::new("/run/tasks/fifos"), "uuid.1.2");
        assert_eq!(
            f.stdout,
            Path::new("/run/tasks/fifos/guest_vm-uuid.1.2.log")
        );
        assert_eq!(
            f.stderr,
            Path::new("/run/tasks/fifos/guest_vm_err-uuid.1.2.log")
        );
        assert_eq!(f.stdout_stream, "guest_vm-uuid.1.2");
        assert_eq!(f.stderr_stream, "guest_vm_err-uuid.1.2");
    }

    #[test]
    fn make_fifo_tolerates_fifo_refuses_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.log");
        make_fifo(&p).unwrap();
        make_fifo(&p).unwrap();
        let st = lstat(&p).unwrap();
        assert!(is_fifo(st.st_mode));
        assert_eq!(st.st_mode & 0o777, 0o600);
        let file = dir.path().join("plain.log");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(make_fifo(&file), Err(Error::NotAFifo { .. })));
    }

    #[test]
    fn bad_task_ids_are_refused() {
        let nowhere = Path::new("/nonexistent");
        for id in ["", "a/b", "..", &"x".repeat(300)] {
            assert!(matches!(
                attach_task_logs(nowhere, nowhere, id),
                Err(Error::InvalidName { .. })
            ));
        }
    }

    #[test]
    fn task_ids_are_found_from_fifo_and_staging_names() {
        assert_eq!(task_id_of("guest_vm-u.1.2.log"), Some("u.1.2"));
        assert_eq!(task_id_of("guest_vm_err-u.1.2.log"), Some("u.1.2"));
        assert_eq!(task_id_of(".guest_vm-u.1.2.log.new"), Some("u.1.2"));
        for other in [
            "guest_vm-.log",
            "guest_vm-x",
            ".guest_vm-x.log",
            "other-x.log",
        ] {
            assert_eq!(task_id_of(other), None, "{other}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(fifo_task_ids(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
        let a = task_fifos(dir.path(), "a.1.1");
        make_fifo(&a.stdout).unwrap();
        make_fifo(&a.stderr).unwrap();
        make_fifo(&staging_path(&task_fifos(dir.path(), "b.2.1").stderr)).unwrap();
        std::fs::write(dir.path().join("unrelated"), b"").unwrap();
        assert_eq!(fifo_task_ids(dir.path()).unwrap(), ["a.1.1", "b.2.1"]);
        remove_task_logs(dir.path(), "b.2.1").unwrap();
        assert_eq!(fifo_task_ids(dir.path()).unwrap(), ["a.1.1"]);
    }

    #[test]
    fn remove_tolerates_missing() {
        let dir = tempfile::tempdir().unwrap();
        remove_task_logs(dir.path(), "t").unwrap();
        let f = task_fifos(dir.path(), "t");
        make_fifo(&f.stdout).unwrap();
        remove_task_logs(dir.path(), "t").unwrap();
        assert!(!f.stdout.exists());
    }
}
