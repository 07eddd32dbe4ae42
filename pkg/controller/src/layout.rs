//! File names in the controller's state directory (documented in the crate
//! doc and `docs/api.md`, so tests can swap a file, e.g. an expired server
//! certificate signed by the same CA).

use std::path::{Path, PathBuf};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/outpost-controller";

/// Root CA certificate (the devices' only trust anchor).
pub const CA_CERT: &str = "ca.cert.pem";
/// Root CA key.
pub const CA_KEY: &str = "ca.key.pem";
/// TLS server certificate (may be followed by intermediates).
pub const SERVER_CERT: &str = "server.cert.pem";
/// TLS server key.
pub const SERVER_KEY: &str = "server.key.pem";
/// Config signing certificate (code-signing EKU).
pub const SIGNING_CERT: &str = "signing.cert.pem";
/// Config signing key.
pub const SIGNING_KEY: &str = "signing.key.pem";
/// Onboarding certificate (client-auth EKU), copied into the device bundle.
pub const ONBOARD_CERT: &str = "onboard.cert.pem";
/// Onboarding key, copied into the device bundle.
pub const ONBOARD_KEY: &str = "onboard.key.pem";
/// The redb database.
pub const DATABASE: &str = "controller.redb";
/// The admin API socket (root only).
pub const ADMIN_SOCKET: &str = "admin.sock";
/// Default directory of the device `/config` bundle.
pub const DEVICE_CONFIG_DIR: &str = "device-config";

/// Files of the device `/config` bundle.
pub mod bundle {
    /// `host:port` of the controller, one line.
    pub const SERVER: &str = "server";
    /// The root CA.
    pub const ROOT_CERT: &str = "root-certificate.pem";
    /// Onboarding certificate.
    pub const ONBOARD_CERT: &str = "onboard.cert.pem";
    /// Onboarding key.
    pub const ONBOARD_KEY: &str = "onboard.key.pem";
}

/// Paths inside one state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The redb file.
    pub fn database(&self) -> PathBuf {
        self.file(DATABASE)
    }

    /// The admin socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.file(ADMIN_SOCKET)
    }

    /// Fails with [`crate::ControllerError::NotInitialised`] unless `init` ran here.
    pub fn require_initialised(&self) -> crate::Result<()> {
        for file in [CA_CERT, DATABASE] {
            if !self.file(file).exists() {
                return Err(crate::ControllerError::NotInitialised {
                    dir: self.root.clone(),
                    file,
                });
            }
        }
        Ok(())
    }
}
