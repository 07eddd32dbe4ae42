//! The device's own identity under `/persist/certs`: a P-256 key generated
//! on the device (never sent anywhere), the certificate the controller
//! issued for it at registration, and the UUID it was given.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde::{Deserialize, Serialize};

use crate::error::CloudError;

/// Device key file name.
pub const DEVICE_KEY: &str = "device.key.pem";
/// Device certificate file name.
pub const DEVICE_CERT: &str = "device.cert.pem";
/// UUID + name file name.
pub const DEVICE_JSON: &str = "device.json";
/// Generated serial number file name (when the hardware has none).
pub const SERIAL: &str = "serial";

/// A registered device: what it needs for mutual TLS.
#[derive(Clone)]
pub struct DeviceIdentity {
    /// UUID assigned by the controller.
    pub uuid: String,
    /// Name on the controller.
    pub name: String,
    /// Certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("uuid", &self.uuid)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct DeviceJson {
    uuid: String,
    name: String,
    server: String,
}

/// The `/persist/certs` directory.
#[derive(Clone, Debug)]
pub struct IdentityStore {
    dir: PathBuf,
}

impl IdentityStore {
    /// Uses `dir` (created 0700 when missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        IdentityStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ensure_dir(&self) -> Result<(), CloudError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| CloudError::io(&self.dir, e))
    }

    /// The device key, generated (P-256) and saved 0600 on first use.
    pub fn key(&self) -> Result<KeyPair, CloudError> {
        let p = self.dir.join(DEVICE_KEY);
        match std::fs::read_to_string(&p) {
            Ok(pem) => KeyPair::from_pem(&pem)
                .map_err(|e| CloudError::bad(&p, format!("not a private key: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.ensure_dir()?;
                let kp = KeyPair::generate().map_err(|e| CloudError::Tls(e.to_string()))?;
                write_private(&p, kp.serialize_pem().as_bytes())?;
                Ok(kp)
            }
            Err(e) => Err(CloudError::io(p, e)),
        }
    }

    /// A certificate signing request for the device key.
    pub fn csr_pem(&self, serial: &str) -> Result<String, CloudError> {
        let kp = self.key()?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| CloudError::Tls(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, serial);
        params.distinguished_name = dn;
        let csr = params
            .serialize_request(&kp)
            .map_err(|e| CloudError::Tls(format!("making the CSR: {e}")))?;
        csr.pem()
            .map_err(|e| CloudError::Tls(format!("encoding the CSR: {e}")))
    }

    /// The saved identity, if this device registered with `server` before
    /// (registering with another controller starts over).
    pub fn load(&self, server: &str) -> Result<Option<DeviceIdentity>, CloudError> {
        if self.dir.exists() {
            self.finish_pending_key()?;
        }
        let jp = self.dir.join(DEVICE_JSON);
        let json = match std::fs::read(&jp) {
            Ok(j) => j,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CloudError::io(jp, e)),
        };
        let d: DeviceJson =
            serde_json::from_slice(&json).map_err(|e| CloudError::bad(&jp, e.to_string()))?;
        if d.server != server {
            tracing::warn!(
                was = d.server,
                now = server,
                "the controller changed; registering again"
            );
            return Ok(None);
        }
        let cp = self.dir.join(DEVICE_CERT);
        let kp = self.dir.join(DEVICE_KEY);
        let cert_pem = std::fs::read(&cp).map_err(|e| CloudError::io(&cp, e))?;
        let key_pem = std::fs::read(&kp).map_err(|e| CloudError::io(&kp, e))?;
        Ok(Some(DeviceIdentity {
            uuid: d.uuid,
            name: d.name,
            cert_pem,
            key_pem,
        }))
    }

    /// Saves what registration returned (certificate first, then the JSON
    /// that makes it count, each written atomically).
    pub fn save(
        &self,
        server: &str,
        resp: &outpost_api::cloud::RegisterResponse,
    ) -> Result<DeviceIdentity, CloudError> {
        self.ensure_dir()?;
        let cp = self.dir.join(DEVICE_CERT);
        write_atomic(&cp, resp.cert_pem.as_bytes(), 0o644)?;
        let json = serde_json::to_vec_pretty(&DeviceJson {
            uuid: resp.uuid.clone(),
            name: resp.name.clone(),
            server: server.to_owned(),
        })
        .expect("serialisable");
        write_atomic(&self.dir.join(DEVICE_JSON), &json, 0o644)?;
        self.load(server)?
            .ok_or_else(|| CloudError::bad(&self.dir, "identity vanished after saving"))
    }

    /// The serial number: `/config/serial` if given, else the hardware's
    /// (DMI product UUID), else one generated once and kept here.
    pub fn serial(&self, from_config: Option<&str>) -> Result<String, CloudError> {
        if let Some(s) = from_config {
            return Ok(s.to_owned());
        }
        if let Ok(s) = std::fs::read_to_string("/sys/class/dmi/id/product_uuid") {
            let s = s.trim();
            if !s.is_empty() && s != "00000000-0000-0000-0000-000000000000" {
                return Ok(s.to_owned());
            }
        }
        let p = self.dir.join(SERIAL);
        if let Ok(s) = std::fs::read_to_string(&p) {
            if !s.trim().is_empty() {
                return Ok(s.trim().to_owned());
            }
        }
        self.ensure_dir()?;
        let s = format!("outpost-{}", hex::encode(rand::random::<[u8; 8]>()));
        write_atomic(&p, s.as_bytes(), 0o644)?;
        Ok(s)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CloudError> {
    write_atomic(path, bytes, 0o600)
}

/// Writes `path` through a temporary file + fsync + rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CloudError> {
    let tmp = path.with_extension("tmp");
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(d) = path.parent() {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(())
    })();
    res.map_err(|e| CloudError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_generated_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let s = IdentityStore::new(d.path().join("certs"));
        let a = s.key().unwrap().serialize_pem();
        let b = s.key().unwrap().serialize_pem();
        assert_eq!(a, b);
        let mode = std::fs::metadata(d.path().join("certs").join(DEVICE_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(s.csr_pem("sn-1").unwrap().contains("CERTIFICATE REQUEST"));
        assert!(s.load("x:1").unwrap().is_none());
        assert_eq!(s.serial(Some("given")).unwrap(), "given");
    }
}
