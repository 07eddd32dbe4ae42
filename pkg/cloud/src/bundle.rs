//! The device's `/config` bundle: where the controller is and what to trust.

use std::path::{Path, PathBuf};

use crate::error::CloudError;

/// `server` file name.
pub const SERVER: &str = "server";
/// Root CA file name.
pub const ROOT_CERT: &str = "root-certificate.pem";
/// Onboarding certificate file name.
pub const ONBOARD_CERT: &str = "onboard.cert.pem";
/// Onboarding key file name.
pub const ONBOARD_KEY: &str = "onboard.key.pem";
/// Signed bootstrap config file name.
pub const BOOTSTRAP: &str = "bootstrap-config.json";
/// Optional serial number file name.
pub const SERIAL: &str = "serial";

/// What `/config` says about the controller.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// `host:port`.
    pub server: String,
    /// Root CA, PEM.
    pub root_pem: Vec<u8>,
    /// Onboarding certificate and key, PEM (absent on a device that was
    /// registered by other means).
    pub onboard: Option<(Vec<u8>, Vec<u8>)>,
    /// Serial number from `/config/serial`.
    pub serial: Option<String>,
}

impl Bundle {
    /// Reads `dir`. `Ok(None)` when there is no `server` file: this device
    /// has no controller (local config only).
    pub fn load(dir: &Path) -> Result<Option<Bundle>, CloudError> {
        let server_path = dir.join(SERVER);
        let server = match std::fs::read_to_string(&server_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CloudError::io(server_path, e)),
        };
        let server = parse_server(&server).map_err(|w| CloudError::bad(&server_path, w))?;
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| CloudError::io(p, e))
        };
        let root_pem = read(ROOT_CERT)?;
        let onboard = match (read(ONBOARD_CERT), read(ONBOARD_KEY)) {
            (Ok(c), Ok(k)) => Some((c, k)),
            (Err(CloudError::Io { source, .. }), _) | (_, Err(CloudError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        let serial = std::fs::read_to_string(dir.join(SERIAL))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        Ok(Some(Bundle {
            dir: dir.to_path_buf(),
            server,
            root_pem,
            onboard,
            serial,
        }))
    }

    /// The bootstrap config file's bytes, if there is one.
    pub fn bootstrap(&self) -> Result<Option<Vec<u8>>, CloudError> {
        let p = self.dir.join(BOOTSTRAP);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CloudError::io(p, e)),
        }
    }
}

/// `host:port`, one line; a URL scheme or a path is an error.
fn parse_server(text: &str) -> Result<String, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty; expected host:port".into());
    }
    if s.contains("://") || s.contains('/') || s.contains(char::is_whitespace) {
        return Err(format!("{s:?} is not host:port"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port; expected host:port"));
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!("{s:?} is not host:port"));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_must_be_host_port() {
        assert_eq!(
            parse_server("ctl.example:8443\n").unwrap(),
            "ctl.example:8443"
        );
        assert_eq!(parse_server("[::1]:8443").unwrap(), "[::1]:8443");
        for bad in ["", "https://x:1", "x", "x:0", "x:port", "a b:1"] {
            assert!(parse_server(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_server_file_means_no_controller() {
        let d = tempfile::tempdir().unwrap();
        assert!(Bundle::load(d.path()).unwrap().is_none());
        std::fs::write(d.path().join(SERVER), "localhost:1").unwrap();
        let e = Bundle::load(d.path()).unwrap_err().to_string();
        assert!(e.contains(ROOT_CERT), "{e}");
    }
}
