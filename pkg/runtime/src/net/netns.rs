//! Named network namespaces: a fresh namespace bind-mounted on a file, the
//! layout `ip netns add` uses, so `ip netns exec` and runc can enter it by path.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::error::NetError;
use crate::mount::is_mountpoint;

/// Creates a new network namespace and bind-mounts it at `path` (idempotent:
/// an existing mount is kept).
pub fn create(task: &str, path: &Path) -> Result<(), NetError> {
    let fail = |what: &'static str, source: std::io::Error| NetError::Netns {
        task: task.to_owned(),
        path: path.to_path_buf(),
        what,
        source,
    };
    if is_mountpoint(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("creating directory", e))?;
    }
    std::fs::File::create(path).map_err(|e| fail("creating mount point", e))?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) moves only the calling thread: do it on a thread
    // of its own that ends right after the bind mount.
    std::thread::spawn(move || -> Result<(), nix::Error> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .map_err(|_| fail("unshare thread panicked", std::io::Error::other("panic")))?
    .map_err(|e| fail("unshare + bind mount", e.into()))
}

/// Unmounts and deletes the namespace at `path`; a missing one is fine.
pub fn remove(task: &str, path: &Path) -> Result<(), NetError> {
    while is_mountpoint(path) {
        umount2(path, MntFlags::MNT_DETACH).map_err(|e| NetError::Netns {
            task: task.to_owned(),
            path: path.to_path_buf(),
            what: "unmounting",
            source: e.into(),
        })?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::Netns {
            task: task.to_owned(),
            path: path.to_path_buf(),
            what: "removing",
            source: e,
        }),
    }
}
