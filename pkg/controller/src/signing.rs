//! Signed config envelopes: `ConfigPayload` JSON, signed with the signing
//! key (ECDSA P-256 SHA-256, DER signature), wrapped in a `SignedEnvelope`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use outpost_api::cloud::{
    ConfigPayload, SignedEnvelope, ALG_ECDSA_P256_SHA256, MAX_ENVELOPE_BYTES,
};
use rcgen::{KeyPair, SigningKey};
use rustls_pki_types::pem::PemObject;

use crate::error::{ControllerError, Result};
use crate::layout::{self, StateDir};
use crate::pki;

/// Bytes of an envelope besides its base64 payload: field names, the
/// signer fingerprint (64), the algorithm and a DER signature (≤ 72 bytes,
/// 96 in base64), with room to spare.
const ENVELOPE_OVERHEAD: usize = 512;

/// Length of the padded base64 of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// The signing key and the fingerprint of its certificate.
pub struct Signer {
    key: KeyPair,
    cert_pem: String,
    fingerprint: String,
}

/// A signed payload, ready to serve.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The envelope.
    pub envelope: SignedEnvelope,
    /// Lowercase hex SHA-256 of the payload bytes (the ETag, unquoted).
    pub etag: String,
}

impl Signer {
    /// Loads `signing.key.pem` and `signing.cert.pem` from the state dir.
    pub fn load(state: &StateDir) -> Result<Signer> {
        let key_path = state.file(layout::SIGNING_KEY);
        let cert_path = state.file(layout::SIGNING_CERT);
        let key = KeyPair::from_pem(&pki::read_to_string(&key_path)?)
            .map_err(ControllerError::pki(key_path.display().to_string()))?;
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(ControllerError::Pki {
                what: key_path.display().to_string(),
                message: "the signing key must be ECDSA P-256".into(),
            });
        }
        // one read of the certificate: its PEM, fingerprint and key agree
        // even while `signing rotate` replaces the file
        let cert_pem = pki::read_to_string(&cert_path)?;
        // `signing rotate` replaces the key, then the certificate: one read
        // between the two (a running `serve` reloading) must not sign with
        // a key that does not match the certificate it names
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
                ControllerError::Pki {
                    what: cert_path.display().to_string(),
                    message: format!("not a PEM certificate: {e}"),
                }
            })?;
        let cert_key = x509_parser::parse_x509_certificate(der.as_ref())
            .map(|(_, c)| c.public_key().subject_public_key.data.to_vec())
            .map_err(|e| ControllerError::Pki {
                what: cert_path.display().to_string(),
                message: format!("not an X.509 certificate: {e}"),
            })?;
        let fingerprint = pki::sha256_hex(der.as_ref());
        if cert_key != key.public_key_raw() {
            return Err(ControllerError::Pki {
                what: key_path.display().to_string(),
                message: format!("is not the key of {}", cert_path.display()),
            });
        }
        Ok(Signer {
            key,
            cert_pem,
            fingerprint,
        })
    }

    /// The signing certificate, PEM (what `GET /api/v1/certs` answers).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Lowercase hex SHA-256 of the signing certificate DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Serialises and signs `payload`.
    pub fn sign(&self, payload: &ConfigPayload) -> Result<Signed> {
        let bytes = serde_json::to_vec(payload).map_err(|e| ControllerError::Pki {
            what: "config payload".into(),
            message: e.to_string(),
        })?;
        // A device reads at most MAX_ENVELOPE_BYTES of an envelope: refuse
        // here, where the operator sees why, rather than serve one it drops.
        let envelope_bytes = base64_len(bytes.len()) + ENVELOPE_OVERHEAD;
        if envelope_bytes > MAX_ENVELOPE_BYTES {
            return Err(ControllerError::BadDocument(format!(
                "the signed config would be about {envelope_bytes} bytes (the document as JSON is {} bytes), \
                 more than the {MAX_ENVELOPE_BYTES} a device reads; make the document smaller",
                bytes.len()
            )));
        }
        let signature = self
            .key
            .sign(&bytes)
            .map_err(ControllerError::pki("signing a config payload"))?;
        Ok(Signed {
            etag: pki::sha256_hex(&bytes),
            envelope: SignedEnvelope {
                payload: BASE64.encode(&bytes),
                signer: self.fingerprint.clone(),
                alg: ALG_ECDSA_P256_SHA256.to_owned(),
                signature: BASE64.encode(signature),
            },
        })
    }
}

/// The current time, RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
