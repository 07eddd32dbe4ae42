//! Test-only crash points, so end-to-end tests can kill the agent at an
//! exact step (e.g. between CNI ADD and task start) instead of hoping a
//! random `kill -9` lands there.
//!
//! A failpoint fires only when all three hold, so it cannot fire on a
//! device by accident:
//! * the binary is a debug build (`cfg(debug_assertions)`; release builds
//!   compile it to nothing);
//! * the layout root is not `/` (tests run under `--root <temp dir>`);
//! * the file `<root>/run/outpost/failpoints/<name>` exists. It is removed
//!   when the failpoint fires, so the restarted agent runs through.
//!
//! Firing logs the failpoint and sends SIGKILL to the whole process.

use crate::layout::Layout;

/// After every CNI ADD of a task succeeded and was recorded, before the
/// container and task exist.
pub const AFTER_CNI_ADD: &str = "after-cni-add";

/// Where a test arms failpoint `name`.
pub fn armed_path(layout: &Layout, name: &str) -> std::path::PathBuf {
    layout.agent_run().join("failpoints").join(name)
}

/// Kills this process with SIGKILL if failpoint `name` is armed (see the
/// module doc for when that can be).
pub fn hit(layout: &Layout, name: &str) {
    if !cfg!(debug_assertions) || layout.root() == std::path::Path::new("/") {
        return;
    }
    if std::fs::remove_file(armed_path(layout, name)).is_ok() {
        tracing::error!(failpoint = name, "test failpoint armed: SIGKILL");
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
        // SIGKILL is not deliverable late; wait for it rather than go on.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_fires_on_a_device_layout_or_unarmed() {
        // A device layout: even an armed file (not created here) is ignored.
        hit(&Layout::new("/"), AFTER_CNI_ADD);
        let dir = tempfile::tempdir().unwrap();
        hit(&Layout::new(dir.path()), AFTER_CNI_ADD);
        assert!(armed_path(&Layout::new(dir.path()), AFTER_CNI_ADD)
            .ends_with("run/outpost/failpoints/after-cni-add"));
    }
}
