//! Checking signed configs: the signing certificate must chain to the root
//! CA with the code-signing extended key usage and be valid now; the
//! envelope must name it and carry a valid ECDSA P-256/SHA-256 signature
//! over the exact payload bytes. Nothing of a refused envelope is used.

use base64::Engine as _;
use outpost_api::cloud::{ConfigPayload, SignedEnvelope, ALG_ECDSA_P256_SHA256};
use outpost_api::Clock;
use rustls::pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};

use crate::error::CloudError;
use crate::tls::certs_from_pem;

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER value bytes.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// A verified envelope.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The payload.
    pub payload: ConfigPayload,
    /// Its exact bytes.
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of the bytes (the ETag, unquoted).
    pub etag: String,
}

/// Verifies envelopes against a signing certificate that chains to the root.
#[derive(Clone, Debug)]
pub struct Verifier {
    roots: Vec<CertificateDer<'static>>,
    /// Known signing certificates and their fingerprints, newest last (at
    /// most [`MAX_SIGNERS`]: a rotation adds one).
    signing: Vec<(CertificateDer<'static>, String)>,
    clock: Clock,
}

/// Signing certificates a [`Verifier`] keeps (the oldest goes first).
pub const MAX_SIGNERS: usize = 8;

impl Verifier {
    /// Trusting only `root_pem`.
    pub fn new(root_pem: &[u8]) -> Result<Self, CloudError> {
        Self::with_clock(root_pem, Clock::system())
    }

    /// Trusting only `root_pem`, checking validity at `clock`'s time.
    pub fn with_clock(root_pem: &[u8], clock: Clock) -> Result<Self, CloudError> {
        Ok(Verifier {
            roots: certs_from_pem(root_pem, "root certificate")?,
            signing: Vec::new(),
            clock,
        })
    }

    /// Takes the controller's signing certificate after checking it chains
    /// to the root CA, is valid now and is meant for code signing.
    pub fn set_signing_cert(&mut self, pem: &[u8]) -> Result<(), CloudError> {
        let cert = certs_from_pem(pem, "signing certificate")?
            .into_iter()
            .next()
            .expect("non-empty");
        self.check_chain(&cert)?;
        let fp = hex::encode(Sha256::digest(cert.as_ref()));
        self.signing.retain(|(_, f)| f != &fp);
        self.signing.push((cert, fp));
        let excess = self.signing.len().saturating_sub(MAX_SIGNERS);
        self.signing.drain(..excess);
        Ok(())
    }

    /// Takes a signing certificate fetched for the fingerprint `fp` an
    /// envelope named: it must be that certificate and pass the checks of
    /// [`Verifier::set_signing_cert`].
    pub fn add_signer(&mut self, fp: &str, pem: &[u8]) -> Result<(), CloudError> {
        let cert = certs_from_pem(pem, "signing certificate")?
            .into_iter()
            .next()
            .expect("non-empty");
        let got = hex::encode(Sha256::digest(cert.as_ref()));
        if !got.eq_ignore_ascii_case(fp) {
            return Err(CloudError::Signature(format!(
                "asked for signing certificate {fp}, got {got}"
            )));
        }
        self.set_signing_cert(pem)
    }

    /// Whether a signing certificate is known.
    pub fn has_signing_cert(&self) -> bool {
        !self.signing.is_empty()
    }

    /// Whether the signing certificate with fingerprint `fp` is known.
    pub fn knows(&self, fp: &str) -> bool {
        self.signing.iter().any(|(_, f)| f.eq_ignore_ascii_case(fp))
    }

    fn check_chain(&self, cert: &CertificateDer<'static>) -> Result<(), CloudError> {
        let anchors: Vec<_> = self
            .roots
            .iter()
            .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| CloudError::Signature(format!("root certificate unusable: {e:?}")))?;
        let ee = webpki::EndEntityCert::try_from(cert).map_err(|e| {
            CloudError::Signature(format!("signing certificate is not usable: {e:?}"))
        })?;
        ee.verify_for_usage(
            crate::tls::provider().signature_verification_algorithms.all,
            &anchors,
            &[],
            UnixTime::since_unix_epoch(self.clock.since_epoch()),
            webpki::KeyUsage::required(EKU_CODE_SIGNING),
            None,
            None,
        )
        .map_err(|e| {
            CloudError::Signature(format!(
                "signing certificate does not verify against the root CA for code signing: {e:?}"
            ))
        })?;
        Ok(())
    }

    /// Verifies `env` and decodes its payload.
    pub fn open(&self, env: &SignedEnvelope) -> Result<Opened, CloudError> {
        if self.signing.is_empty() {
            return Err(CloudError::Signature(
                "no signing certificate known yet".into(),
            ));
        }
        let Some((cert, _)) = self
            .signing
            .iter()
            .find(|(_, f)| f.eq_ignore_ascii_case(&env.signer))
        else {
            let known: Vec<&str> = self.signing.iter().map(|(_, f)| f.as_str()).collect();
            return Err(CloudError::Signature(format!(
                "signed by certificate {} but the known signing certificates are {}",
                env.signer,
                known.join(", ")
            )));
        };
        if env.alg != ALG_ECDSA_P256_SHA256 {
            return Err(CloudError::Signature(format!(
                "algorithm {:?} is not {ALG_ECDSA_P256_SHA256}",
                env.alg
            )));
        }
        // The certificate may have expired since it was fetched.
        self.check_chain(cert)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let bytes = b64
            .decode(&env.payload)
            .map_err(|e| CloudError::Signature(format!("payload is not base64: {e}")))?;
        let sig = b64
            .decode(&env.signature)
            .map_err(|e| CloudError::Signature(format!("signature is not base64: {e}")))?;
        let ee = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| CloudError::Signature(format!("signing certificate: {e:?}")))?;
        ee.verify_signature(webpki::aws_lc_rs::ECDSA_P256_SHA256, &bytes, &sig)
            .map_err(|e| {
                CloudError::Signature(format!("signature does not match the payload: {e:?}"))
            })?;
        let payload: ConfigPayload = serde_json::from_slice(&bytes)
            .map_err(|e| CloudError::Signature(format!("payload is not a config payload: {e}")))?;
        let doc_gen = payload.config.get("generation").and_then(|g| g.as_u64());
        if doc_gen != Some(payload.generation) {
            return Err(CloudError::Signature(format!(
                "payload generation {} differs from the config's generation {doc_gen:?}",
                payload.generation
            )));
        }
        let etag = hex::encode(Sha256::digest(&bytes));
        Ok(Opened {
            payload,
            bytes,
            etag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SigningKey,
    };

    struct Pki {
        root_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Pki {
            root_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    fn leaf(pki: &Pki, eku: ExtendedKeyUsagePurpose, days: (i64, i64)) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.extended_key_usages = vec![eku];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(days.0);
        p.not_after = now + time::Duration::days(days.1);
        (p.signed_by(&key, &pki.issuer).unwrap().pem(), key)
    }

    fn envelope(cert_pem: &str, key: &KeyPair, payload: &[u8]) -> SignedEnvelope {
        let der = crate::tls::certs_from_pem(cert_pem.as_bytes(), "t").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        SignedEnvelope {
            payload: b64.encode(payload),
            signer: hex::encode(Sha256::digest(der[0].as_ref())),
            alg: ALG_ECDSA_P256_SHA256.into(),
            signature: b64.encode(key.sign(payload).unwrap()),
        }
    }

    fn payload(generation: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "device": "d1", "generation": generation, "issued_at": "2026-01-01T00:00:00Z",
            "config": {"generation": generation, "apps": []}
        }))
        .unwrap()
    }

    #[test]
    fn accepts_a_good_signature_and_refuses_everything_else() {
        let pki = ca();
        let (sc, sk) = leaf(&pki, ExtendedKeyUsagePurpose::CodeSigning, (-1, 30));
        let mut v = Verifier::new(pki.root_pem.as_bytes()).unwrap();
        v.set_signing_cert(sc.as_bytes()).unwrap();
        let good = envelope(&sc, &sk, &payload(3));
        let o = v.open(&good).unwrap();
        assert_eq!(o.payload.generation, 3);
        assert_eq!(o.etag, hex::encode(Sha256::digest(payload(3))));

        // Tampered payload (signature over other bytes).
        let mut t = good.clone();
        t.payload = base64::engine::general_purpose::STANDARD.encode(payload(4));
        let e = v.open(&t).unwrap_err().to_string();
        assert!(e.contains("signature does not match"), "{e}");

        // Signed by another key that claims the same certificate.
        let other = KeyPair::generate().unwrap();
        let e = v
            .open(&envelope(&sc, &other, &payload(3)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("signature does not match"), "{e}");

        // Signed by a certificate that is not the signing certificate.
        let (sc2, sk2) = leaf(&pki, ExtendedKeyUsagePurpose::CodeSigning, (-1, 30));
        let e = v
            .open(&envelope(&sc2, &sk2, &payload(3)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("signed by certificate"), "{e}");

        // Unsigned.
        let mut u = good.clone();
        u.signature.clear();
        assert!(v.open(&u).is_err());

        // Payload generation disagreeing with the document's.
        let bad = serde_json::to_vec(&serde_json::json!({
            "device": "d1", "generation": 9, "issued_at": "x", "config": {"generation": 1}
        }))
        .unwrap();
        let e = v.open(&envelope(&sc, &sk, &bad)).unwrap_err().to_string();
        assert!(e.contains("differs"), "{e}");
    }

    #[test]
    fn signing_cert_must_chain_be_current_and_for_code_signing() {
        let pki = ca();
        let mut v = Verifier::new(pki.root_pem.as_bytes()).unwrap();
        let (tls_only, _) = leaf(&pki, ExtendedKeyUsagePurpose::ServerAuth, (-1, 30));
        let e = v
            .set_signing_cert(tls_only.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("code signing"), "{e}");
        let (expired, _) = leaf(&pki, ExtendedKeyUsagePurpose::CodeSigning, (-30, -1));
        assert!(v.set_signing_cert(expired.as_bytes()).is_err());
        let (future, _) = leaf(&pki, ExtendedKeyUsagePurpose::CodeSigning, (1, 30));
        assert!(v.set_signing_cert(future.as_bytes()).is_err());
        let other = ca();
        let (foreign, _) = leaf(&other, ExtendedKeyUsagePurpose::CodeSigning, (-1, 30));
        assert!(v.set_signing_cert(foreign.as_bytes()).is_err());
        assert!(!v.has_signing_cert());
    }
}
