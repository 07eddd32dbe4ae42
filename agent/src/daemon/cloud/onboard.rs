//! Onboarding: the signed bootstrap config of a first boot, and the device
//! identity (saved, or obtained by registering with the onboarding certificate).

use outpost_api::cloud::{BootstrapConfig, RegisterRequest};
use outpost_cloud::{Bundle, Client, CloudError, IdentityStore, Verifier};

use crate::daemon::source::RawConfig;

/// Origin of the bootstrap config.
pub const ORIGIN_BOOTSTRAP: &str = "bootstrap";

/// Reads and checks `/config/bootstrap-config.json`.
pub(super) fn bootstrap(bundle: &Bundle) -> Result<Option<RawConfig>, CloudError> {
    let Some(bytes) = bundle.bootstrap()? else {
        return Ok(None);
    };
    let path = bundle.dir.join(outpost_cloud::bundle::BOOTSTRAP);
    let b: BootstrapConfig = serde_json::from_slice(&bytes).map_err(|e| CloudError::BadFile {
        path: path.clone(),
        what: e.to_string(),
    })?;
    let mut v = Verifier::new(&bundle.root_pem)?;
    v.set_signing_cert(b.signing_cert_pem.as_bytes())?;
    let opened = v.open(&b.config)?;
    if let Some(d) = &opened.payload.device {
        return Err(CloudError::Signature(format!(
            "a bootstrap config must not name a device (it names {d})"
        )));
    }
    // Any config from the controller replaces it: its generation is 0.
    let mut config = opened.payload.config;
    if let Some(obj) = config.as_object_mut() {
        obj.insert("generation".into(), 0.into());
    }
    Ok(Some(RawConfig {
        bytes: serde_json::to_vec(&config).expect("serialisable"),
        origin: ORIGIN_BOOTSTRAP.into(),
    }))
}

/// The saved identity, or a registration with the onboarding certificate.
pub(super) async fn onboard(
    bundle: &Bundle,
    ids: &IdentityStore,
) -> Result<outpost_cloud::DeviceIdentity, CloudError> {
    if let Some(id) = ids.load(&bundle.server)? {
        return Ok(id);
    }
    let Some((cert, key)) = &bundle.onboard else {
        return Err(CloudError::BadFile {
            path: bundle.dir.join(outpost_cloud::bundle::ONBOARD_CERT),
            what: "missing, and this device is not registered yet".into(),
        });
    };
    let serial = ids.serial(bundle.serial.as_deref())?;
    let client = Client::new(&bundle.server, &bundle.root_pem, Some((cert, key)))?;
    let resp = client
        .register(&RegisterRequest {
            csr_pem: ids.csr_pem(&serial)?,
            serial,
        })
        .await?;
    ids.save(&bundle.server, &resp)
}
