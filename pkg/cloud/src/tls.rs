//! rustls client configuration: TLS 1.2+, the root CA from `/config` as the
//! only trust anchor, and a client certificate (onboarding or device).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::error::CloudError;

/// The crypto provider used everywhere (the one reqwest's rustls uses).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Certificates in a PEM bundle.
pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, CloudError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CloudError::Tls(format!("{what}: {e}")))?;
    if certs.is_empty() {
        return Err(CloudError::Tls(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

/// A client config trusting only `root_pem`, presenting `client` (cert
/// chain PEM, key PEM) when given.
pub fn client_config(
    root_pem: &[u8],
    client: Option<(&[u8], &[u8])>,
) -> Result<ClientConfig, CloudError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(root_pem, "root certificate")? {
        roots
            .add(c)
            .map_err(|e| CloudError::Tls(format!("root certificate: {e}")))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CloudError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = certs_from_pem(cert_pem, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|e| CloudError::Tls(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| CloudError::Tls(format!("client certificate: {e}")))?
        }
    };
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}
