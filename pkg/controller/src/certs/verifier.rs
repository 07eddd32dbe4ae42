//! The controller's TLS client-certificate verifier on an injectable
//! clock: webpki's verifier against the root CA, with the `now` rustls
//! passes replaced by the [`Clock`]'s time.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::Clock;

/// A [`ClientCertVerifier`] that checks validity at the clock's time.
#[derive(Debug)]
pub struct ClockedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    clock: Clock,
}

impl ClockedClientVerifier {
    /// Wraps `inner` (a `WebPkiClientVerifier`), checking at `clock`'s time.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, clock: Clock) -> Self {
        ClockedClientVerifier { inner, clock }
    }
}

impl ClientCertVerifier for ClockedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(
            end_entity,
            intermediates,
            UnixTime::since_unix_epoch(self.clock.since_epoch()),
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `not_after` (Unix seconds) of a certificate, `None` if it does not parse
/// (the TLS verifier accepted it, so that does not happen for a client
/// certificate).
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp())
}

/// The 401 for a request whose client certificate (valid at the handshake)
/// has expired since, by `clock`.
pub fn expired_failure(not_after: Option<i64>, clock: &Clock) -> Option<crate::reply::Failure> {
    let t = not_after?;
    let now = i64::try_from(clock.unix_secs()).unwrap_or(i64::MAX);
    (now > t).then(|| {
        let when = time::OffsetDateTime::from_unix_timestamp(t)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| t.to_string());
        crate::reply::Failure::unauthorized(format!(
            "the client certificate expired at {when}; a device re-registers with the onboarding certificate (docs/certificates.md)"
        ))
    })
}
