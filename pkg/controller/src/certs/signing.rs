//! Config-signing certificate rotation with an overlap window
//! (`outpost-controller signing rotate`, `docs/certificates.md`).
//!
//! The state dir's `signing.cert.pem`/`signing.key.pem` are the current
//! signer. A rotation moves the current certificate into
//! `signing-retired.json` with the end of its overlap, and writes a new key
//! and certificate (issued by the CA, codeSigning). Configs set from then
//! on are signed by the new key. `GET /api/v1/certs/<fingerprint>` serves
//! the current certificate and every retired one still inside its overlap,
//! so a device that meets an envelope by a signer it does not know fetches
//! it by the fingerprint the envelope names (and checks it chains to its
//! root). The files are read when `serve` starts: copy them to every
//! replica's state dir and restart the replicas.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{ControllerError, Result};
use crate::layout::{self, StateDir};
use crate::pki::{self, Ca, Leaf, Validity, SERVICE_CERT_DAYS};

/// Retired signing certificates, in the state dir.
pub const RETIRED_FILE: &str = "signing-retired.json";

/// A signing certificate that was replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// SHA-256 of its DER, lowercase hex (the envelopes' `signer`).
    pub fingerprint: String,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// When it was replaced (RFC 3339).
    pub retired_at: String,
    /// Served to devices until then (RFC 3339).
    pub serve_until: String,
}

/// What [`rotate`] did.
#[derive(Clone, Debug)]
pub struct Rotated {
    /// Fingerprint of the new signing certificate.
    pub new_fingerprint: String,
    /// Fingerprint of the retired one.
    pub old_fingerprint: String,
    /// End of the retired one's overlap (RFC 3339).
    pub serve_until: String,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// The retired signing certificates of `state` (none when the file is missing).
pub fn retired(state: &StateDir) -> Result<Vec<Retired>> {
    let path = state.file(RETIRED_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| ControllerError::Pki {
            what: path.display().to_string(),
            message: format!("not a list of retired signing certificates: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ControllerError::io("reading", &path)(e)),
    }
}

/// Makes a new signing key and certificate; the current one stays served
/// for `overlap` after `now`. Retired certificates past their overlap are
/// dropped from the list.
pub fn rotate(state: &StateDir, overlap: Duration, now: OffsetDateTime) -> Result<Rotated> {
    state.require_initialised()?;
    let ca = Ca::load(state)?;
    let cert_path = state.file(layout::SIGNING_CERT);
    let old_pem = pki::read_to_string(&cert_path)?;
    let old_fp = pki::cert_file_fingerprint(&cert_path)?;
    let overlap = time::Duration::try_from(overlap)
        .map_err(|e| ControllerError::Invalid(format!("overlap {overlap:?} is too long: {e}")))?;
    let serve_until = rfc3339(now + overlap);
    let mut list: Vec<Retired> = retired(state)?
        .into_iter()
        .filter(|r| parse(&r.serve_until).is_some_and(|t| t > now) && r.fingerprint != old_fp)
        .collect();
    list.push(Retired {
        fingerprint: old_fp.clone(),
        cert_pem: old_pem,
        retired_at: rfc3339(now),
        serve_until: serve_until.clone(),
    });
    let issued = ca.issue(&Leaf::Signing, Validity::days_from_now(SERVICE_CERT_DAYS))?;
    let json = serde_json::to_vec_pretty(&list).expect("serialisable");
    // the retired list first: a crash before the new key leaves the old
    // signer current and also listed (harmless)
    write_replacing(&state.file(RETIRED_FILE), &json, 0o644)?;
    write_replacing(
        &state.file(layout::SIGNING_KEY),
        issued.key_pem.as_bytes(),
        0o600,
    )?;
    write_replacing(&cert_path, issued.cert_pem.as_bytes(), 0o644)?;
    tracing::info!(old = %old_fp, new = %issued.fingerprint(), %serve_until, "signing certificate rotated");
    Ok(Rotated {
        new_fingerprint: issued.fingerprint(),
        old_fingerprint: old_fp,
        serve_until,
    })
}

/// Writes `path` through a temporary file in the same directory + rename.
fn write_replacing(path: &std::path::Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    pki::write_file(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(ControllerError::io("replacing", path))
}

/// The signing certificates `serve` hands out by fingerprint.
#[derive(Clone, Debug, Default)]
pub struct SigningCerts {
    /// Fingerprint → (PEM, served until; `None`: the current one).
    certs: HashMap<String, (String, Option<OffsetDateTime>)>,
}

impl SigningCerts {
    /// The current signing certificate and the retired ones of `state`.
    pub fn load(state: &StateDir, current_fp: &str, current_pem: &str) -> Result<Self> {
        let mut certs = HashMap::new();
        for r in retired(state)? {
            certs.insert(r.fingerprint, (r.cert_pem, parse(&r.serve_until)));
        }
        certs.insert(current_fp.to_owned(), (current_pem.to_owned(), None));
        Ok(SigningCerts { certs })
    }

    /// The certificate with fingerprint `fp` if it is current or inside its
    /// overlap at `now`.
    pub fn get(&self, fp: &str, now: OffsetDateTime) -> Option<&str> {
        let (pem, until) = self.certs.get(&fp.to_ascii_lowercase())?;
        match until {
            None => Some(pem),
            Some(t) if *t > now => Some(pem),
            Some(_) => None,
        }
    }
}

/// What `serve` signs with and serves: the key and its certificate, and
/// the certificates served by fingerprint (current and retired).
pub struct Signing {
    /// The current key and certificate.
    pub signer: crate::signing::Signer,
    /// Current and retired certificates by fingerprint.
    pub certs: SigningCerts,
    /// What the files looked like when read (a change means reload).
    pub(crate) stamp: FilesStamp,
}

/// Length and modification time of each signing file (`None`: missing).
pub(crate) type FilesStamp = Vec<Option<(u64, std::time::SystemTime)>>;

/// The stamp of the signing files of `state` now.
pub(crate) fn files_stamp(state: &StateDir) -> FilesStamp {
    [layout::SIGNING_KEY, layout::SIGNING_CERT, RETIRED_FILE]
        .iter()
        .map(|f| {
            let m = std::fs::metadata(state.file(f)).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

impl Signing {
    /// Reads the signing files of `state`.
    pub fn load(state: &StateDir) -> Result<Signing> {
        let stamp = files_stamp(state);
        let signer = crate::signing::Signer::load(state)?;
        let certs = SigningCerts::load(state, signer.fingerprint(), signer.cert_pem())?;
        Ok(Signing {
            signer,
            certs,
            stamp,
        })
    }
}
