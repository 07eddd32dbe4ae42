//! `outpost-controller sign-bootstrap`: a signed config any device may use
//! on its first boot (`/config/bootstrap-config.json`, a `BootstrapConfig`:
//! the signing certificate + the `SignedEnvelope`). Works offline, straight
//! from the signing key (no running server needed).
//!
//! The payload has `device: null` and generation 0 whatever the file says,
//! so the first config the controller sets (generation ≥ 1) is never
//! refused as a replay.

use std::path::Path;

use outpost_api::cloud::{BootstrapConfig, ConfigPayload};

use crate::document;
use crate::error::{ControllerError, Result};
use crate::layout::StateDir;
use crate::pki;
use crate::signing::{now_rfc3339, Signer};

/// Generation of every bootstrap config.
pub const BOOTSTRAP_GENERATION: u64 = 0;

/// Signs the document at `input` and writes the `BootstrapConfig` to `output`;
/// returns the warnings (rejected apps, an overridden generation).
pub fn sign_bootstrap(state: &StateDir, input: &Path, output: &Path) -> Result<Vec<String>> {
    let signer = Signer::load(state)?;
    let text = pki::read_to_string(input)?;
    let prepared = document::prepare(&text, BOOTSTRAP_GENERATION)
        .map_err(|e| ControllerError::BadDocument(format!("{}: {e}", input.display())))?;
    let mut warnings = prepared.warnings;
    if let Some(g) = document::written_generation(&text).filter(|g| *g != BOOTSTRAP_GENERATION) {
        warnings.push(format!(
            "generation {g} in {} replaced by {BOOTSTRAP_GENERATION}: a bootstrap config always has generation {BOOTSTRAP_GENERATION}",
            input.display()
        ));
    }
    let payload = ConfigPayload {
        device: None,
        generation: BOOTSTRAP_GENERATION,
        issued_at: now_rfc3339(),
        config: prepared.document,
    };
    let signed = signer.sign(&payload)?;
    let bootstrap = BootstrapConfig {
        signing_cert_pem: signer.cert_pem().to_owned(),
        config: signed.envelope,
    };
    let mut json = serde_json::to_vec_pretty(&bootstrap)
        .map_err(|e| ControllerError::Invalid(format!("encoding the bootstrap config: {e}")))?;
    json.push(b'\n');
    pki::write_file(output, &json, 0o644)?;
    Ok(warnings)
}
