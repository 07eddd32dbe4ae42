//! The controller's certificates: a root CA that issues the TLS server
//! certificate, the config signing certificate, the onboarding certificate
//! and every device certificate. All keys are ECDSA P-256.
//!
//! Public so tests can issue certificates of their own from the same CA
//! (an expired server certificate, a certificate for a wrong host name).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::error::{ControllerError, Result};
use crate::layout::{self, StateDir};

/// Root CA lifetime.
pub const CA_DAYS: i64 = 3650;
/// Lifetime of the server, signing and onboarding certificates.
pub const SERVICE_CERT_DAYS: i64 = 3650;
/// Default lifetime of a device certificate (`serve --device-cert-lifetime`;
/// devices renew at about two thirds of it, `docs/certificates.md`).
pub const DEVICE_CERT_DAYS: i64 = 365;
/// How far back `not_before` is set, for devices whose clock is a bit behind.
const BACKDATE: Duration = Duration::hours(1);

/// Lowercase hex SHA-256 of `bytes` (certificate fingerprints, ETags).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A validity window.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Start.
    pub not_before: OffsetDateTime,
    /// End.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago to `days` from now.
    pub fn days_from_now(days: i64) -> Self {
        Self::starting(OffsetDateTime::now_utc(), Duration::days(days))
    }

    /// From a little before `now` (an hour, or a quarter of a shorter
    /// lifetime: for devices whose clock is a bit behind) to `lifetime`
    /// after it.
    pub fn starting(now: OffsetDateTime, lifetime: Duration) -> Self {
        Validity {
            not_before: now - BACKDATE.min(lifetime / 4),
            not_after: now + lifetime,
        }
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Debug)]
pub enum Leaf {
    /// TLS server: these host names / IP addresses.
    Server(Vec<String>),
    /// Config signing (code-signing EKU).
    Signing,
    /// Onboarding client identity.
    Onboarding,
    /// A device's client identity: CN = the device UUID.
    Device(String),
}

/// A certificate and its key, PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// PKCS#8 key, PEM (empty for a certificate issued from a CSR).
    pub key_pem: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Serial number, lowercase hex.
    pub serial: String,
}

impl Issued {
    /// SHA-256 of the certificate DER, lowercase hex.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.cert_der)
    }
}

/// The root CA, able to issue certificates.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f; // positive INTEGER
    bytes[0] |= 0x01; // no leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Outpost");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn new_key(what: &str) -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(ControllerError::pki(what))
}

fn leaf_params(leaf: &Leaf, validity: Validity) -> Result<CertificateParams> {
    let (name, sans, eku) = match leaf {
        Leaf::Server(names) => (
            names.first().cloned().unwrap_or_default(),
            names.clone(),
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        Leaf::Signing => (
            "Outpost config signing".to_owned(),
            Vec::new(),
            ExtendedKeyUsagePurpose::CodeSigning,
        ),
        Leaf::Onboarding => (
            "Outpost onboarding".to_owned(),
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
        Leaf::Device(uuid) => (
            uuid.clone(),
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    };
    let mut params = CertificateParams::new(sans).map_err(ControllerError::pki(format!(
        "certificate names for {name}"
    )))?;
    params.distinguished_name = dn(&name);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

impl Ca {
    /// A new self-signed root CA; returns it and its key (PEM).
    pub fn create(validity: Validity) -> Result<(Ca, String)> {
        let key = new_key("root CA key")?;
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn("Outpost controller root CA");
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(random_serial());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(ControllerError::pki("root CA certificate"))?;
        let cert_pem = cert.pem();
        Ok((
            Ca {
                cert_pem,
                issuer: Issuer::new(params, key),
            },
            key_pem,
        ))
    }

    /// The CA of an initialised state directory.
    pub fn load(state: &StateDir) -> Result<Ca> {
        state.require_initialised()?;
        let cert_path = state.file(layout::CA_CERT);
        let key_path = state.file(layout::CA_KEY);
        let cert_pem = read_to_string(&cert_path)?;
        let key = KeyPair::from_pem(&read_to_string(&key_path)?)
            .map_err(ControllerError::pki(key_path.display().to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(ControllerError::pki(cert_path.display().to_string()))?;
        Ok(Ca { cert_pem, issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A new key and a certificate for it.
    pub fn issue(&self, leaf: &Leaf, validity: Validity) -> Result<Issued> {
        let key = new_key("leaf key")?;
        let issued = self.issue_for(leaf, &key, validity)?;
        Ok(Issued {
            key_pem: key.serialize_pem(),
            ..issued
        })
    }

    /// A certificate for an existing public key.
    pub fn issue_for(
        &self,
        leaf: &Leaf,
        public_key: &impl PublicKeyData,
        validity: Validity,
    ) -> Result<Issued> {
        let params = leaf_params(leaf, validity)?;
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| hex::encode(s.as_ref()))
            .unwrap_or_default();
        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(ControllerError::pki(format!(
                "issuing {leaf:?} certificate"
            )))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: String::new(),
            not_after: validity.not_after,
            serial,
        })
    }
}

/// A parsed device CSR: the public key it proves possession of.
pub struct DeviceCsr {
    params: CertificateSigningRequestParams,
}

impl DeviceCsr {
    /// Parses a PEM CSR and verifies its self-signature.
    pub fn from_pem(pem: &str) -> Result<DeviceCsr, String> {
        CertificateSigningRequestParams::from_pem(pem)
            .map(|params| DeviceCsr { params })
            .map_err(|e| format!("csr_pem is not a usable certificate signing request: {e}"))
    }

    /// The raw public key bytes (for the key-match check), lowercase hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.params.public_key.der_bytes())
    }

    /// Issues the device certificate for this CSR's key, valid for `validity`.
    pub fn issue(&self, ca: &Ca, uuid: &str, validity: Validity) -> Result<Issued> {
        ca.issue_for(
            &Leaf::Device(uuid.to_owned()),
            &self.params.public_key,
            validity,
        )
    }
}

/// Reads a text file.
pub fn read_to_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(ControllerError::io("reading", path))
}

/// Every certificate in a PEM file, DER.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(ControllerError::pki(path.display().to_string()))?;
    if certs.is_empty() {
        return Err(ControllerError::Pki {
            what: path.display().to_string(),
            message: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

/// SHA-256 fingerprint of the first certificate in a PEM file.
pub fn cert_file_fingerprint(path: &Path) -> Result<String> {
    Ok(sha256_hex(&read_certs(path)?[0]))
}

/// Writes `contents` to `path` with `mode` (0600 for keys), replacing it.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(ControllerError::io("creating", path))?;
    // the umask may have narrowed it; never widened
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(ControllerError::io("setting the mode of", path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(ControllerError::io("writing", path))
}
