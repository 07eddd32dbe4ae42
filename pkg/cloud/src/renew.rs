//! Device certificate renewal (`docs/certificates.md`).
//!
//! * **When**: once a third of the certificate's lifetime is left
//!   ([`CertValidity::renew_at`]), by the injectable [`Clock`].
//! * **How**: `POST /devices/<uuid>/cert` with the current certificate and a
//!   CSR for the same key, or for a new key. A new key is written first to
//!   `device.key.next.pem` (0600, temp file + fsync + rename); once the new
//!   certificate is saved (same way) it is renamed over `device.key.pem`. A
//!   crash in between is finished by [`IdentityStore::load`]: the pending
//!   key is taken when the saved certificate is for it, dropped otherwise.
//! * **Swap**: [`Client::set_identity`] rebuilds the TLS configuration of
//!   the client every task shares; nothing restarts.
//! * **Past expiry**: [`reauthenticate`] registers again with the bootstrap
//!   onboarding certificate and the device's existing key; the controller
//!   issues a fresh certificate for a known, non-revoked device whose
//!   registered key matches.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_api::cloud::{RegisterRequest, RenewRequest};
use outpost_api::Clock;
use rcgen::KeyPair;

use crate::client::Client;
use crate::error::CloudError;
use crate::identity::{write_atomic, DeviceIdentity, IdentityStore, DEVICE_CERT, DEVICE_KEY};

/// Pending new device key of a renewal under way.
pub const DEVICE_KEY_NEXT: &str = "device.key.next.pem";

/// The validity window of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertValidity {
    /// Start.
    pub not_before: SystemTime,
    /// End.
    pub not_after: SystemTime,
}

fn to_system(t: x509_parser::time::ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH,
    }
}

impl CertValidity {
    /// The validity of the first certificate in `pem`.
    pub fn of_pem(pem: &[u8]) -> Result<Self, CloudError> {
        let der = crate::tls::certs_from_pem(pem, "device certificate")?
            .into_iter()
            .next()
            .expect("non-empty");
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| CloudError::Tls(format!("device certificate: {e}")))?;
        let v = cert.validity();
        Ok(CertValidity {
            not_before: to_system(v.not_before),
            not_after: to_system(v.not_after),
        })
    }

    /// When to renew: when a third of the lifetime is left.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_after - life / 3
    }

    /// Whether renewal is due at `now`.
    pub fn renewal_due(&self, now: SystemTime) -> bool {
        now >= self.renew_at()
    }

    /// Whether the certificate has expired at `now` (as webpki decides:
    /// valid through the second of `not_after`).
    pub fn expired(&self, now: SystemTime) -> bool {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        secs > self.not_after_unix()
    }

    /// Time left at `now` (zero when expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or_default()
    }

    /// Unix seconds of `not_after`.
    pub fn not_after_unix(&self) -> u64 {
        self.not_after
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Whether the first certificate of `cert_pem` is for `key`.
pub fn cert_matches_key(cert_pem: &[u8], key: &KeyPair) -> bool {
    let Ok(certs) = crate::tls::certs_from_pem(cert_pem, "certificate") else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(certs[0].as_ref()) else {
        return false;
    };
    cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw()
}

fn csr_for(key: &KeyPair, common_name: &str) -> Result<String, CloudError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| CloudError::Tls(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params
        .serialize_request(key)
        .and_then(|c| c.pem())
        .map_err(|e| CloudError::Tls(format!("making the CSR: {e}")))
}

impl IdentityStore {
    /// Finishes a key rotation a crash interrupted: a pending new key
    /// becomes the device key when the saved certificate is for it, and is
    /// dropped otherwise (the old key and certificate stay in use).
    pub fn finish_pending_key(&self) -> Result<(), CloudError> {
        let next = self.dir().join(DEVICE_KEY_NEXT);
        let pem = match std::fs::read_to_string(&next) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(CloudError::io(next, e)),
        };
        let cert = std::fs::read(self.dir().join(DEVICE_CERT)).unwrap_or_default();
        match KeyPair::from_pem(&pem) {
            Ok(k) if cert_matches_key(&cert, &k) => {
                rename_synced(&next, &self.dir().join(DEVICE_KEY))?;
                tracing::info!(
                    "finished a device key rotation interrupted after the certificate was saved"
                );
            }
            _ => {
                std::fs::remove_file(&next).map_err(|e| CloudError::io(&next, e))?;
                tracing::info!("dropped the pending key of an interrupted certificate renewal");
            }
        }
        Ok(())
    }

    /// Saves a renewed certificate (and makes the pending key the device
    /// key when it is for that one), each step atomic.
    fn save_renewed(&self, cert_pem: &str, new_key: Option<&KeyPair>) -> Result<(), CloudError> {
        write_atomic(&self.dir().join(DEVICE_CERT), cert_pem.as_bytes(), 0o644)?;
        if new_key.is_some() {
            rename_synced(
                &self.dir().join(DEVICE_KEY_NEXT),
                &self.dir().join(DEVICE_KEY),
            )?;
        }
        Ok(())
    }
}

fn rename_synced(from: &Path, to: &Path) -> Result<(), CloudError> {
    std::fs::rename(from, to).map_err(|e| CloudError::io(to, e))?;
    if let Some(d) = to.parent() {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| CloudError::io(d, e))?;
    }
    Ok(())
}

/// Renews `id`'s certificate through `client` (which presents it), for the
/// same key or, with `new_key`, for a freshly generated one; saves it and
/// switches `client` (and its clones) to it. Returns the new identity.
pub async fn renew(
    client: &Client,
    ids: &IdentityStore,
    id: &DeviceIdentity,
    new_key: bool,
) -> Result<DeviceIdentity, CloudError> {
    let key = if new_key {
        let k = KeyPair::generate().map_err(|e| CloudError::Tls(e.to_string()))?;
        write_atomic(
            &ids.dir().join(DEVICE_KEY_NEXT),
            k.serialize_pem().as_bytes(),
            0o600,
        )?;
        k
    } else {
        let pem = String::from_utf8_lossy(&id.key_pem).into_owned();
        KeyPair::from_pem(&pem).map_err(|e| CloudError::Tls(format!("device key: {e}")))?
    };
    let csr_pem = csr_for(&key, &id.uuid)?;
    let resp = match client.renew_cert(&id.uuid, &RenewRequest { csr_pem }).await {
        Ok(r) => r,
        Err(e) => {
            if new_key {
                let _ = std::fs::remove_file(ids.dir().join(DEVICE_KEY_NEXT));
            }
            return Err(e);
        }
    };
    if !cert_matches_key(resp.cert_pem.as_bytes(), &key) {
        return Err(CloudError::Tls(
            "the renewed certificate is not for the key of the request".into(),
        ));
    }
    ids.save_renewed(&resp.cert_pem, new_key.then_some(&key))?;
    let key_pem = if new_key {
        key.serialize_pem().into_bytes()
    } else {
        id.key_pem.clone()
    };
    client.set_identity(resp.cert_pem.as_bytes(), &key_pem)?;
    tracing::info!(uuid = %id.uuid, not_after = %resp.not_after, new_key, "device certificate renewed");
    Ok(DeviceIdentity {
        uuid: id.uuid.clone(),
        name: id.name.clone(),
        cert_pem: resp.cert_pem.into_bytes(),
        key_pem,
    })
}

/// The path back for a device whose certificate expired while it was
/// offline: registers again through `onboarding` (a client presenting the
/// bootstrap onboarding certificate) with the existing device key; saves
/// the fresh certificate and switches `device` (its clones too) to it.
pub async fn reauthenticate(
    onboarding: &Client,
    device: &Client,
    ids: &IdentityStore,
    server: &str,
    serial: &str,
) -> Result<DeviceIdentity, CloudError> {
    let resp = onboarding
        .register(&RegisterRequest {
            serial: serial.to_owned(),
            csr_pem: ids.csr_pem(serial)?,
        })
        .await?;
    let id = ids.save(server, &resp)?;
    device.set_identity(&id.cert_pem, &id.key_pem)?;
    tracing::info!(uuid = %id.uuid, "re-registered with the onboarding certificate after the device certificate expired");
    Ok(id)
}

/// Whether the saved identity's certificate has expired by `clock`.
pub fn expired(id: &DeviceIdentity, clock: &Clock) -> bool {
    CertValidity::of_pem(&id.cert_pem).is_ok_and(|v| v.expired(clock.now()))
}
