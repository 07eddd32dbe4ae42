//! Repairs what a task create interrupted by `kill -9` of the agent leaves
//! in the user containerd.
//!
//! When the agent dies while containerd 1.6 is creating a task, containerd
//! rolls the create back, but not always at once: while the shim is stuck
//! inside its create (e.g. opening a log FIFO nobody reads yet) the bundle
//! `<state>/io.containerd.runtime.v2.task/<ns>/<id>` stays for several
//! seconds, and every new create of that ID fails with `failed to start
//! shim: mkdir <bundle>: file exists`. When containerd gives up on the shim
//! it removes the bundle but leaves the shim process running, for a
//! container that may no longer exist (and a later shim start for the same
//! ID even reuses it through its socket).
//!
//! The repair only touches what belongs to this agent's user containerd:
//! shims whose command line names its socket (`-address`) and namespace,
//! bundles under its state dir, runc/runsc state under its roots; and only
//! for IDs containerd has no task for. Shims of other containerd instances
//! (the system one, other tests' private ones) are never touched.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;
use thiserror::Error;
use tracing::Instrument;

use super::state::get;
use crate::client::Containerd;
use crate::error::RuntimeError;
use crate::layout::Layout;

/// containerd's runtime v2 directory, under both its state and root dirs.
pub const TASK_DIR: &str = "io.containerd.runtime.v2.task";

/// Where containerd 1.6 shims put their sockets (`defaults.DefaultStateDir`
/// + `s`), whatever the instance's own state dir.
pub const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// How long containerd may take to answer whether a task exists.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a killed shim may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long containerd's own clean-up after a killed shim may take before
/// the repair removes the bundle itself.
const CLEANUP_GRACE: Duration = Duration::from_secs(3);
/// How long `runc delete --force` may take.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a repair could not finish.
#[derive(Debug, Error)]
pub enum RepairError {
    /// The task ID cannot name a directory safely.
    #[error("task id {0:?} is not a safe path component; nothing repaired")]
    BadId(String),
    /// Asking containerd whether the task exists failed.
    #[error("task {task}: asking the user containerd whether it has a task: {source}")]
    Containerd {
        /// Task ID.
        task: String,
        /// The API error.
        source: Box<RuntimeError>,
    },
    /// containerd did not answer in time (a shim holding its lock).
    #[error("task {task}: the user containerd did not answer tasks.Get within {secs} s")]
    Unanswered {
        /// Task ID.
        task: String,
        /// The timeout.
        secs: u64,
    },
    /// Sending SIGKILL to an orphan shim failed.
    #[error("task {task}: killing orphan shim pid {pid}: {source}")]
    Kill {
        /// Task ID.
        task: String,
        /// Shim PID.
        pid: i32,
        /// The errno.
        source: nix::errno::Errno,
    },
    /// A killed shim did not exit.
    #[error("task {task}: orphan shim pid {pid} still runs {secs} s after SIGKILL")]
    ShimLingers {
        /// Task ID.
        task: String,
        /// Shim PID.
        pid: i32,
        /// How long it was given.
        secs: u64,
    },
    /// A file-system step failed.
    #[error("task {task}: {context} {}: {source}", path.display())]
    Io {
        /// Task ID.
        task: String,
        /// What was being done.
        context: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a repair removed (empty when nothing was stale).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// `(task ID, PID)` of every orphan shim killed.
    pub shims_killed: Vec<(String, i32)>,
    /// Tasks whose stale bundle (and work dir) was removed.
    pub bundles_removed: Vec<String>,
    /// Tasks whose leftover runc/runsc container was force-deleted.
    pub containers_deleted: Vec<String>,
}

impl RepairReport {
    /// True when nothing was stale.
    pub fn is_empty(&self) -> bool {
        self.shims_killed.is_empty()
            && self.bundles_removed.is_empty()
            && self.containers_deleted.is_empty()
    }
}

/// A runc shim process of this user containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shim {
    /// Its PID.
    pub pid: i32,
    /// The task (or group) ID it serves (`-id`).
    pub id: String,
}

/// The bundle containerd makes for task `id`: `<state>/io.containerd.runtime.v2.task/<ns>/<id>`.
pub fn bundle_dir(layout: &Layout, namespace: &str, id: &str) -> PathBuf {
    layout.user_state().join(TASK_DIR).join(namespace).join(id)
}

/// The bundle's work dir under containerd's root (the bundle's `work` link).
pub fn work_dir(layout: &Layout, namespace: &str, id: &str) -> PathBuf {
    layout.user_root().join(TASK_DIR).join(namespace).join(id)
}

/// The socket the shim of `id` listens on: containerd 1.6's
/// `SocketAddress`, sha256 of `<containerd socket>/<ns>/<id>`.
pub fn shim_socket(containerd_socket: &Path, namespace: &str, id: &str) -> PathBuf {
    let key = containerd_socket.join(namespace).join(id);
    let sum = sha2::Sha256::digest(key.as_os_str().as_encoded_bytes());
    Path::new(SHIM_SOCKET_DIR).join(hex::encode(sum))
}

/// True when `e` is containerd refusing a task create because the task's
/// bundle is still there (`failed to start shim: mkdir <bundle>: file exists`).
pub fn is_stale_bundle(e: &RuntimeError) -> bool {
    matches!(e, RuntimeError::Api { op: "tasks.Create", status, .. }
        if status.message().contains("mkdir") && status.message().contains("file exists"))
}

/// Every runc shim whose command line names `containerd_socket` as its
/// `-address` and `namespace` as its `-namespace`.
pub fn find_shims(containerd_socket: &Path, namespace: &str) -> Vec<Shim> {
    let want = containerd_socket.as_os_str().as_encoded_bytes();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_shim = args.first().is_some_and(|a| {
            Path::new(std::ffi::OsStr::from_bytes(a))
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"containerd-shim"))
        });
        if !is_shim {
            continue;
        }
        let flag = |name: &[u8]| {
            args.windows(2)
                .find(|w| w[0] == name)
                .map(|w| w[1].to_vec())
        };
        if flag(b"-address").as_deref() != Some(want)
            || flag(b"-namespace").as_deref() != Some(namespace.as_bytes())
        {
            continue;
        }
        if let Some(id) = flag(b"-id") {
            out.push(Shim {
                pid,
                id: String::from_utf8_lossy(&id).into_owned(),
            });
        }
    }
    out
}

/// True when task `id` has a shim of this user containerd or a bundle: on
/// an ID about to be created (no task), leftovers a create would trip over
/// (a stale bundle, or an orphan shim a new shim start would reuse through
/// its socket).
pub fn has_leftovers(c: &Containerd, layout: &Layout, id: &str) -> bool {
    bundle_dir(layout, c.namespace(), id)
        .symlink_metadata()
        .is_ok()
        || find_shims(c.socket(), c.namespace())
            .iter()
            .any(|s| s.id == id)
}

/// Repairs every task ID of this user containerd that has a bundle or a
/// shim but no task: kills its shims, removes its bundle and leftover
/// runtime state. Run before the agent's first pass, when it is the only
/// client creating tasks. A task that cannot be repaired is logged and
/// skipped; the report says what was removed.
pub async fn repair_all(c: &Containerd, layout: &Layout) -> RepairReport {
    let ns = c.namespace();
    let mut ids: BTreeSet<String> = find_shims(c.socket(), ns)
        .into_iter()
        .map(|s| s.id)
        .collect();
    let bundles = layout.user_state().join(TASK_DIR).join(ns);
    for e in std::fs::read_dir(&bundles).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `.<id>` is containerd's own atomic delete in progress.
        if !name.starts_with('.') {
            ids.insert(name);
        }
    }
    let mut report = RepairReport::default();
    for id in ids {
        match repair_task(c, layout, &id).await {
            Ok(r) => {
                report.shims_killed.extend(r.shims_killed);
                report.bundles_removed.extend(r.bundles_removed);
                report.containers_deleted.extend(r.containers_deleted);
            }
            Err(e) => tracing::warn!(task = %id, error = %e, "could not repair task state"),
        }
    }
    report
}

/// Repairs task `id` if containerd has no task for it (nothing is touched
/// when it has one): kills its shims, waits for containerd's own clean-up,
/// force-deletes a leftover runc/runsc container, removes the bundle (its
/// rootfs unmounted first) and work dir, and a dead shim's socket.
pub async fn repair_task(
    c: &Containerd,
    layout: &Layout,
    id: &str,
) -> Result<RepairReport, RepairError> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(RepairError::BadId(id.to_owned()));
    }
    repair_checked(c, layout, id)
        .instrument(tracing::info_span!("repair", task = %id))
        .await
}

async fn repair_checked(
    c: &Containerd,
    layout: &Layout,
    id: &str,
) -> Result<RepairReport, RepairError> {
    let mut report = RepairReport::default();
    match tokio::time::timeout(ASK_TIMEOUT, get(c, id)).await {
        Ok(Ok(Some(_))) => return Ok(report),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => {
            return Err(RepairError::Containerd {
                task: id.to_owned(),
                source: Box::new(e),
            })
        }
        Err(_) => {
            return Err(RepairError::Unanswered {
                task: id.to_owned(),
                secs: ASK_TIMEOUT.as_secs(),
            })
        }
    }
    let ns = c.namespace();
    let bundle = bundle_dir(layout, ns, id);
    for shim in find_shims(c.socket(), ns)
        .into_iter()
        .filter(|s| s.id == id)
    {
        kill_shim(id, shim.pid).await?;
        tracing::info!(pid = shim.pid, "killed orphan shim (no task in containerd)");
        report.shims_killed.push((id.to_owned(), shim.pid));
    }
    if !report.shims_killed.is_empty() {
        // containerd may still hold a connection to the shim: its clean-up
        // (runc delete, bundle removal by ID) must be over before a new
        // create of this ID, so let it run first.
        let deadline = tokio::time::Instant::now() + CLEANUP_GRACE;
        while bundle.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if delete_runtime_state(layout, ns, id).await {
        report.containers_deleted.push(id.to_owned());
    }
    if remove_bundle(layout, ns, id)? {
        tracing::info!(bundle = %bundle.display(), "removed stale bundle");
        report.bundles_removed.push(id.to_owned());
    }
    remove_dead_socket(&shim_socket(c.socket(), ns, id));
    Ok(report)
}

async fn kill_shim(id: &str, pid: i32) -> Result<(), RepairError> {
    let target = nix::unistd::Pid::from_raw(pid);
    match nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(source) => {
            return Err(RepairError::Kill {
                task: id.to_owned(),
                pid,
                source,
            })
        }
    }
    let deadline = tokio::time::Instant::now() + EXIT_TIMEOUT;
    while running(pid) {
        if tokio::time::Instant::now() >= deadline {
            return Err(RepairError::ShimLingers {
                task: id.to_owned(),
                pid,
                secs: EXIT_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// True while `pid` exists and is not a zombie.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

/// Force-deletes a runc or runsc container `id` left without a task;
/// true when one was there.
async fn delete_runtime_state(layout: &Layout, ns: &str, id: &str) -> bool {
    let mut deleted = false;
    for (root, bin) in [
        (layout.runc_root(), Some(PathBuf::from("runc"))),
        (layout.runsc_root(), crate::runsc::find_runsc()),
    ] {
        let root = root.join(ns);
        if !root.join(id).exists() {
            continue;
        }
        let Some(bin) = bin else { continue };
        let run = tokio::process::Command::new(&bin)
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", id])
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(DELETE_TIMEOUT, run).await {
            Ok(Ok(out)) if out.status.success() => {
                tracing::info!(root = %root.display(), "force-deleted leftover container");
                deleted = true;
            }
            Ok(Ok(out)) => tracing::warn!(
                root = %root.display(),
                stderr = %String::from_utf8_lossy(&out.stderr).trim(),
                "force-deleting leftover container failed"
            ),
            Ok(Err(e)) => {
                tracing::warn!(bin = %bin.display(), error = %e, "running the OCI runtime")
            }
            Err(_) => tracing::warn!(root = %root.display(), "force delete timed out"),
        }
    }
    deleted
}

/// Removes the bundle of `id` (rootfs unmounted first; the `work` link is
/// removed, not followed) and its work dir; true when a bundle was there.
fn remove_bundle(layout: &Layout, ns: &str, id: &str) -> Result<bool, RepairError> {
    let bundle = bundle_dir(layout, ns, id);
    let io = |context, path: &Path, source| RepairError::Io {
        task: id.to_owned(),
        context,
        path: path.to_path_buf(),
        source,
    };
    let existed = bundle.symlink_metadata().is_ok();
    if existed {
        let rootfs = bundle.join("rootfs");
        crate::mount::unmount(&rootfs).map_err(|e| match e {
            RuntimeError::Io { source, .. } => io("unmounting", &rootfs, source),
            other => io(
                "unmounting",
                &rootfs,
                std::io::Error::other(other.to_string()),
            ),
        })?;
        remove_tree(&bundle).map_err(|e| io("removing stale bundle", &bundle, e))?;
    }
    let work = work_dir(layout, ns, id);
    remove_tree(&work).map_err(|e| io("removing stale work dir", &work, e))?;
    Ok(existed)
}

fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a shim socket nobody listens on any more (a killed shim cannot
/// remove its own).
fn remove_dead_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_socket());
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(socket = %path.display(), "removed dead shim socket"),
            Err(e) => {
                tracing::warn!(socket = %path.display(), error = %e, "removing dead shim socket")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_socket_matches_containerd() {
        // Checked against a live containerd 1.6.20 shim.
        assert_eq!(
            shim_socket(Path::new("/tmp/crx/state/containerd.sock"), "eve-user-apps", "c1"),
            Path::new(
                "/run/containerd/s/36536780fdb38f7fcc5bb8f649843b2912910d4b82bdc5c5089ac83d441324be"
            )
        );
    }

    #[test]
    fn recognises_the_stale_bundle_error() {
        let e = RuntimeError::api(
            "tasks.Create",
            "t",
            tonic::Status::unknown(
                "failed to start shim: mkdir /r/io.containerd.runtime.v2.task/ns/t: file exists",
            ),
        );
        assert!(is_stale_bundle(&e));
        let other = RuntimeError::api("tasks.Create", "t", tonic::Status::unknown("no such file"));
        assert!(!is_stale_bundle(&other));
    }

    #[test]
    fn paths_follow_the_layout() {
        let l = Layout::new("/x");
        assert_eq!(
            bundle_dir(&l, "ns", "t"),
            Path::new("/x/run/containerd-user/io.containerd.runtime.v2.task/ns/t")
        );
        assert_eq!(
            work_dir(&l, "ns", "t"),
            Path::new("/x/persist/vault/containerd/io.containerd.runtime.v2.task/ns/t")
        );
    }
}
