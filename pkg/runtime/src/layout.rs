//! Every path the agent uses, derived from one root prefix, so the same
//! binary runs on a device (`/`) and in development or tests (`--root DIR`).

use std::path::{Path, PathBuf};

/// Device paths under a root prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Paths under `root` (`/` on a device).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The root prefix.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// System containerd socket (started by init): `/run/containerd/containerd.sock`.
    pub fn system_socket(&self) -> PathBuf {
        self.at("run/containerd/containerd.sock")
    }

    /// Services the device image declares (written by outpost-mkimage from
    /// the linuxkit YAML `services:`): `/etc/outpost/services.json`.
    pub fn services_manifest(&self) -> PathBuf {
        self.at("etc/outpost/services.json")
    }

    /// User containerd state dir: `/run/containerd-user`.
    pub fn user_state(&self) -> PathBuf {
        self.at("run/containerd-user")
    }

    /// User containerd socket: `/run/containerd-user/containerd.sock`.
    pub fn user_socket(&self) -> PathBuf {
        self.user_state().join("containerd.sock")
    }

    /// User containerd config the agent generates. EVE keeps it at
    /// `/etc/containerd/user.toml`; `/etc` is read-only on the device image,
    /// so Outpost writes it into the instance's state dir.
    pub fn user_config(&self) -> PathBuf {
        self.user_state().join("user.toml")
    }

    /// User containerd root (images, snapshots): `/persist/vault/containerd`.
    pub fn user_root(&self) -> PathBuf {
        self.at("persist/vault/containerd")
    }

    /// runc state root for user tasks (kept apart from the system instance's).
    pub fn runc_root(&self) -> PathBuf {
        self.user_state().join("runc")
    }

    /// runsc (gVisor) state root for user tasks.
    pub fn runsc_root(&self) -> PathBuf {
        self.user_state().join("runsc")
    }

    /// Helper executables the agent generates (the runsc wrapper).
    pub fn helper_bin(&self) -> PathBuf {
        self.user_state().join("bin")
    }

    /// Container and data volumes: `/persist/vault/volumes`.
    pub fn volumes(&self) -> PathBuf {
        self.at("persist/vault/volumes")
    }

    /// The persistent partition: `/persist`.
    pub fn persist(&self) -> PathBuf {
        self.at("persist")
    }

    /// Agent state (redb): `/persist/status`.
    pub fn status_dir(&self) -> PathBuf {
        self.at("persist/status")
    }

    /// Task log FIFOs: `/run/tasks/fifos`.
    pub fn fifos(&self) -> PathBuf {
        self.at("run/tasks/fifos")
    }

    /// memlogd's write-side socket: `/run/linuxkit-external-logging.sock`.
    pub fn memlogd_log_socket(&self) -> PathBuf {
        self.at("run/linuxkit-external-logging.sock")
    }

    /// memlogd's query socket: `/run/memlogdq.sock`.
    pub fn memlogd_query_socket(&self) -> PathBuf {
        self.at("run/memlogdq.sock")
    }

    /// Device identity and bootstrap files: `/config`.
    pub fn config_dir(&self) -> PathBuf {
        self.at("config")
    }

    /// Agent runtime dir (admin socket, pid file): `/run/outpost`.
    pub fn agent_run(&self) -> PathBuf {
        self.at("run/outpost")
    }

    /// Named network namespaces of app tasks: `/run/netns` (`ip netns` layout).
    pub fn netns_dir(&self) -> PathBuf {
        self.at("run/netns")
    }

    /// Per-task generated `resolv.conf` and `hosts`: `/run/outpost/net`.
    pub fn net_run(&self) -> PathBuf {
        self.agent_run().join("net")
    }

    /// CNI attachment records (survive reboots so DEL frees leases): `/persist/vault/net/attachments`.
    pub fn net_attachments(&self) -> PathBuf {
        self.at("persist/vault/net/attachments")
    }

    /// host-local IPAM leases (`dataDir`), stable across restarts: `/persist/vault/net/ipam`.
    pub fn net_ipam(&self) -> PathBuf {
        self.at("persist/vault/net/ipam")
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::new("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_match_eve() {
        let l = Layout::default();
        assert_eq!(
            l.user_socket(),
            Path::new("/run/containerd-user/containerd.sock")
        );
        assert_eq!(l.user_root(), Path::new("/persist/vault/containerd"));
        assert_eq!(l.volumes(), Path::new("/persist/vault/volumes"));
        assert_eq!(l.fifos(), Path::new("/run/tasks/fifos"));
        assert_eq!(
            l.memlogd_log_socket(),
            Path::new("/run/linuxkit-external-logging.sock")
        );
        let t = Layout::new("/tmp/x");
        assert_eq!(
            t.system_socket(),
            Path::new("/tmp/x/run/containerd/containerd.sock")
        );
    }
}
