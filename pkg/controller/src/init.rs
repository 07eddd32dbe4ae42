//! `outpost-controller init`: the keys and certificates, the database and
//! the device `/config` bundle.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::db::{Db, Settings};
use crate::error::{ControllerError, Result};
use crate::layout::{self, bundle, StateDir};
use crate::pki::{self, Ca, Leaf, Validity};

/// What `init` is asked to do.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// `HOST:PORT` the devices connect to.
    pub server: String,
    /// More names (DNS or IP) for the server certificate.
    pub names: Vec<String>,
    /// Where to write the device bundle (default `<state>/device-config`).
    pub out: Option<PathBuf>,
    /// Default listen address (default `0.0.0.0:PORT`, `[::]:PORT` for an IPv6 host).
    pub listen: Option<String>,
    /// Store "open onboarding": unknown serials may register.
    pub open_onboarding: bool,
    /// Replace an existing state.
    pub force: bool,
}

/// What `init` made.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// The device bundle directory.
    pub bundle: PathBuf,
    /// The default listen address.
    pub listen: String,
    /// Names in the server certificate.
    pub server_names: Vec<String>,
}

/// Splits `HOST:PORT` (`[v6]:PORT` for IPv6).
pub fn split_server(server: &str) -> Result<(String, u16)> {
    let bad = || {
        ControllerError::Invalid(format!(
            "--server {server:?}: expected HOST:PORT (e.g. controller.example.com:8443 or 192.0.2.10:8443)"
        ))
    };
    let (host, port) = server.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(['/', ' ']) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Files `init` writes in the state dir (removed first with `--force`).
const STATE_FILES: [&str; 9] = [
    layout::CA_CERT,
    layout::CA_KEY,
    layout::SERVER_CERT,
    layout::SERVER_KEY,
    layout::SIGNING_CERT,
    layout::SIGNING_KEY,
    layout::ONBOARD_CERT,
    layout::ONBOARD_KEY,
    layout::DATABASE,
];

fn mkdir_private(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(ControllerError::io("creating", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(ControllerError::io("setting the mode of", dir))
}

/// Runs `init` in `state`.
pub fn init(state: &StateDir, opts: &InitOptions) -> Result<InitReport> {
    let (host, port) = split_server(&opts.server)?;
    for file in [layout::CA_KEY, layout::DATABASE] {
        if state.file(file).exists() && !opts.force {
            return Err(ControllerError::AlreadyInitialised {
                dir: state.root().to_owned(),
                file,
            });
        }
    }
    if std::os::unix::net::UnixStream::connect(state.admin_socket()).is_ok() {
        return Err(ControllerError::Invalid(format!(
            "a controller is serving {} (its admin socket answers); stop it first",
            state.root().display()
        )));
    }
    mkdir_private(state.root())?;
    for file in STATE_FILES {
        let path = state.file(file);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ControllerError::io("removing", path)(e))
            }
            _ => {}
        }
    }
    let mut server_names = vec![host.clone()];
    for n in &opts.names {
        if !server_names.contains(n) {
            server_names.push(n.clone());
        }
    }
    let (ca, ca_key) = Ca::create(Validity::days_from_now(pki::CA_DAYS))?;
    let service = Validity::days_from_now(pki::SERVICE_CERT_DAYS);
    let server = ca.issue(&Leaf::Server(server_names.clone()), service)?;
    let signing = ca.issue(&Leaf::Signing, service)?;
    let onboard = ca.issue(&Leaf::Onboarding, service)?;
    let write = |name: &str, contents: &str, mode: u32| {
        pki::write_file(&state.file(name), contents.as_bytes(), mode)
    };
    write(layout::CA_KEY, &ca_key, 0o600)?;
    write(layout::CA_CERT, ca.cert_pem(), 0o644)?;
    write(layout::SERVER_KEY, &server.key_pem, 0o600)?;
    write(layout::SERVER_CERT, &server.cert_pem, 0o644)?;
    write(layout::SIGNING_KEY, &signing.key_pem, 0o600)?;
    write(layout::SIGNING_CERT, &signing.cert_pem, 0o644)?;
    write(layout::ONBOARD_KEY, &onboard.key_pem, 0o600)?;
    write(layout::ONBOARD_CERT, &onboard.cert_pem, 0o644)?;

    let listen = opts.listen.clone().unwrap_or_else(|| {
        if host.contains(':') {
            format!("[::]:{port}")
        } else {
            format!("0.0.0.0:{port}")
        }
    });
    let settings = Settings {
        server: opts.server.clone(),
        listen: listen.clone(),
        open_onboarding: opts.open_onboarding,
    };
    drop(Db::create(&state.database(), &settings)?);

    let bundle_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| state.file(layout::DEVICE_CONFIG_DIR));
    mkdir_private(&bundle_dir)?;
    let put = |name: &str, contents: &str, mode: u32| {
        pki::write_file(&bundle_dir.join(name), contents.as_bytes(), mode)
    };
    put(bundle::SERVER, &format!("{}\n", opts.server), 0o644)?;
    put(bundle::ROOT_CERT, ca.cert_pem(), 0o644)?;
    put(bundle::ONBOARD_CERT, &onboard.cert_pem, 0o644)?;
    put(bundle::ONBOARD_KEY, &onboard.key_pem, 0o600)?;
    tracing::info!(state = %state.root().display(), bundle = %bundle_dir.display(), "controller initialised");
    Ok(InitReport {
        bundle: bundle_dir,
        listen,
        server_names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(
            split_server("a.example:8443").unwrap(),
            ("a.example".into(), 8443)
        );
        assert_eq!(split_server("[::1]:443").unwrap(), ("::1".into(), 443));
        for bad in ["nohost", "h:0", ":80", "h:x", "h/p:1"] {
            assert!(split_server(bad).is_err(), "{bad}");
        }
    }
}
