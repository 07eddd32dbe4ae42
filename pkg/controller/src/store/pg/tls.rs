//! TLS to PostgreSQL. `serve --database-ca FILE` gives the CA(s) the
//! server's certificate must chain to; the connection then requires TLS
//! (rustls, aws-lc-rs), and the certificate is verified against those roots
//! and the URL's host name, the way libpq's `sslmode=verify-full` does.
//! Verification is never skipped: `sslmode=require` without a CA is
//! refused (libpq would encrypt without checking who answers). Without a
//! CA the connection is plain (a unix socket, a private network).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{ControllerError, Result};

/// The connector for `config`, with its `sslmode` set to what the
/// connector does: `require` with `ca`, `disable` without.
pub fn connector(
    config: &mut tokio_postgres::Config,
    ca: Option<&Path>,
) -> Result<MakeRustlsConnect> {
    let invalid = |m: String| ControllerError::Invalid(m);
    let roots = match ca {
        None if config.get_ssl_mode() == SslMode::Require => {
            return Err(invalid(
                "--database asks for sslmode=require but no --database-ca was given: \
                 give the CA the server's certificate must chain to (it is always verified)"
                    .into(),
            ))
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            rustls::RootCertStore::empty()
        }
        Some(_) if config.get_ssl_mode() == SslMode::Disable => {
            return Err(invalid(
                "--database says sslmode=disable but --database-ca was given: drop one of them"
                    .into(),
            ))
        }
        Some(_) if !config.get_hosts().iter().any(|h| matches!(h, Host::Tcp(_))) => {
            return Err(invalid(
                "--database-ca: the database is reached over a unix socket, where PostgreSQL has no TLS; give a host name"
                    .into(),
            ))
        }
        Some(path) => {
            config.ssl_mode(SslMode::Require);
            load_roots(path)?
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS to PostgreSQL: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(tls))
}

/// The certificates of the PEM file `path` as roots.
fn load_roots(path: &Path) -> Result<rustls::RootCertStore> {
    let what = format!("--database-ca {}", path.display());
    let bytes =
        std::fs::read(path).map_err(|e| ControllerError::Invalid(format!("{what}: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| ControllerError::Invalid(format!("{what}: not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| ControllerError::Invalid(format!("{what}: not a CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ControllerError::Invalid(format!(
            "{what}: no certificate in the file"
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn config(url: &str) -> tokio_postgres::Config {
        tokio_postgres::Config::from_str(url).unwrap()
    }

    fn err(url: &str, ca: Option<&Path>) -> String {
        connector(&mut config(url), ca).err().unwrap().to_string()
    }

    #[test]
    fn without_a_ca_the_connection_is_plain_and_require_is_refused() {
        let mut c = config("postgres://u@db.example/outpost");
        connector(&mut c, None).unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        let e = err("postgres://u@db.example/outpost?sslmode=require", None);
        assert!(e.contains("--database-ca"), "{e}");
    }

    #[test]
    fn a_ca_requires_tls_over_tcp_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
        let mut c = config("postgres://u@db.example/outpost");
        connector(&mut c, Some(&ca)).unwrap();
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        let e = err("postgresql:///outpost?host=/run/postgresql", Some(&ca));
        assert!(e.contains("unix socket"), "{e}");
        let e = err("postgres://u@db.example/outpost?sslmode=disable", Some(&ca));
        assert!(e.contains("sslmode=disable"), "{e}");
        std::fs::write(&ca, "not a certificate").unwrap();
        let e = err("postgres://u@db.example/outpost", Some(&ca));
        assert!(e.contains("no certificate"), "{e}");
    }
}
