//! Errors of app networking; each names the task, network or plugin.

use std::path::PathBuf;

use thiserror::Error;

/// What went wrong while wiring an app to its networks.
#[derive(Debug, Error)]
pub enum NetError {
    /// The app names a network the device config does not have.
    #[error("app {app}: interface {index} refers to network {network}, which is not configured")]
    UnknownNetwork {
        /// App display name and UUID.
        app: String,
        /// Position of the interface.
        index: usize,
        /// Network UUID.
        network: String,
    },
    /// A CNI plugin failed.
    #[error("CNI {command} of plugin {plugin} for task {task} on {network}: {message}")]
    Plugin {
        /// `ADD` / `DEL`.
        command: &'static str,
        /// Plugin type (`bridge`, `portmap`, …).
        plugin: String,
        /// Task / CNI container ID.
        task: String,
        /// Network name and interface: `network outpost-<uuid> (eth0)`.
        network: String,
        /// The plugin's error message (or exit status and stderr).
        message: String,
    },
    /// The plugin binary is missing.
    #[error("CNI plugin {} is missing (install containernetworking-plugins)", path.display())]
    MissingPlugin {
        /// Expected path.
        path: PathBuf,
    },
    /// Creating or removing a network namespace failed.
    #[error("network namespace {} for task {task}: {what}: {source}", path.display())]
    Netns {
        /// Task ID.
        task: String,
        /// Bind-mount path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// Reading or writing a file of the network state.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Path.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// A host tool (`ip`, `iptables`) failed while setting up or removing a
    /// network instance.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        message: String,
    },
    /// An attachment record could not be decoded.
    #[error("attachment record {}: {problem}", path.display())]
    Record {
        /// Path.
        path: PathBuf,
        /// Decoder message.
        problem: String,
    },
}

impl NetError {
    /// An I/O failure at `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

impl From<NetError> for crate::error::RuntimeError {
    fn from(e: NetError) -> Self {
        crate::error::RuntimeError::Network(Box::new(e))
    }
}
