//! The TLS server configuration: TLS 1.2/1.3 (rustls, aws-lc-rs), the
//! server certificate from the state dir, client certificates verified
//! against the root CA but optional at the TLS level (`ping` and `certs`
//! need none; each endpoint decides).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::error::{ControllerError, Result};
use crate::layout::{self, StateDir};
use crate::pki;

/// Builds the server configuration from `ca.cert.pem`, `server.cert.pem`
/// (leaf first, then any intermediates) and `server.key.pem`.
pub fn server_config(state: &StateDir) -> Result<Arc<ServerConfig>> {
    server_config_with(state, &crate::certs::Clock::system())
}

/// [`server_config`] whose client certificates are checked at `clock`'s time.
pub fn server_config_with(
    state: &StateDir,
    clock: &crate::certs::Clock,
) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in pki::read_certs(&state.file(layout::CA_CERT))? {
        roots
            .add(cert)
            .map_err(|e| ControllerError::Tls(format!("root CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ControllerError::Tls(format!("client verifier: {e}")))?;
    let verifier = Arc::new(crate::certs::verifier::ClockedClientVerifier::new(
        verifier,
        clock.clone(),
    ));
    let chain = pki::read_certs(&state.file(layout::SERVER_CERT))?;
    let key_path = state.file(layout::SERVER_KEY);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(ControllerError::pki(key_path.display().to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ControllerError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ControllerError::Tls(format!("server certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
