//! Resolving a reference to this platform's manifest and its config:
//! tag → (index / manifest list → platform) → manifest → config, each JSON
//! document size-capped and checked against its digest.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use reqwest::Method;

use super::error::PullError;
use super::registry::{read_limited, Body, Registry};
use super::Reference;
use crate::image::content::MAX_JSON_BLOB;
use crate::image::{
    host_arch, pick_platform, sha256_digest, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_INDEX,
    MEDIA_MANIFEST,
};

/// Every manifest media type we accept, for `Accept`.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A platform manifest with its config, ready to fetch layers for.
#[derive(Debug)]
pub struct Resolved {
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Its media type (OCI or Docker v2).
    pub manifest_media_type: String,
    /// The manifest as served (what the digest covers).
    pub manifest_bytes: Vec<u8>,
    /// Parsed manifest.
    pub manifest: ImageManifest,
    /// The config blob as served.
    pub config_bytes: Vec<u8>,
    /// Its `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
}

impl Resolved {
    /// Compressed bytes of all layers plus the config.
    pub fn size(&self) -> u64 {
        self.manifest.layers().iter().map(|l| l.size()).sum::<u64>() + self.manifest.config().size()
    }
}

/// Resolves `r` to this machine's (linux/`host_arch`) manifest and config.
pub async fn resolve(reg: &Registry, r: &Reference) -> Result<Resolved, PullError> {
    let mut object = r.object().to_owned();
    let mut expected = r.digest.clone();
    for _ in 0..4 {
        let (media, bytes) = fetch_manifest(reg, &object, expected.as_deref()).await?;
        let digest = sha256_digest(&bytes);
        // Servers that omit or generalise Content-Type: look at the document.
        let media = sniff_media(&media, &bytes);
        if media == MEDIA_INDEX || media == MEDIA_DOCKER_LIST {
            let index = ImageIndex::from_reader(bytes.as_slice())
                .map_err(|e| reg.manifest_err(format!("index {digest} does not parse: {e}")))?;
            let m = pick_platform(&index).ok_or_else(|| {
                reg.manifest_err(format!(
                    "index {digest} has no manifest for linux/{}",
                    host_arch()
                ))
            })?;
            object = m.digest().to_string();
            expected = Some(object.clone());
            continue;
        }
        if media != MEDIA_MANIFEST && media != MEDIA_DOCKER_MANIFEST {
            return Err(reg.manifest_err(format!("unsupported manifest media type {media:?}")));
        }
        let manifest = ImageManifest::from_reader(bytes.as_slice())
            .map_err(|e| reg.manifest_err(format!("manifest {digest} does not parse: {e}")))?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = fetch_json_blob(reg, &config_digest).await?;
        let config = ImageConfiguration::from_reader(config_bytes.as_slice())
            .map_err(|e| reg.manifest_err(format!("config {config_digest} does not parse: {e}")))?;
        let diff_ids = config.rootfs().diff_ids().to_vec();
        if diff_ids.is_empty() || diff_ids.len() != manifest.layers().len() {
            return Err(reg.manifest_err(format!(
                "{} layers in manifest {digest} but {} diff_ids in its config",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        return Ok(Resolved {
            manifest_digest: digest,
            manifest_media_type: media,
            manifest_bytes: bytes,
            manifest,
            config_bytes,
            diff_ids,
        });
    }
    Err(reg.manifest_err("indexes nested too deeply".into()))
}

fn sniff_media(header: &str, bytes: &[u8]) -> String {
    if [
        MEDIA_INDEX,
        MEDIA_DOCKER_LIST,
        MEDIA_MANIFEST,
        MEDIA_DOCKER_MANIFEST,
    ]
    .contains(&header)
    {
        return header.to_owned();
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => MEDIA_INDEX.to_owned(),
        _ => MEDIA_MANIFEST.to_owned(),
    }
}

/// GET a manifest; checks its digest when `expected` is set.
async fn fetch_manifest(
    reg: &Registry,
    object: &str,
    expected: Option<&str>,
) -> Result<(String, Vec<u8>), PullError> {
    let what = format!("fetching manifest {object}");
    let resp = reg
        .get(
            Method::GET,
            &what,
            &format!("manifests/{object}"),
            &[("accept", ACCEPT.to_owned())],
        )
        .await?;
    let resp = reg.check(resp, &what, object).await?;
    let media = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .unwrap_or_default();
    let bytes = read_capped(reg, resp, &what).await?;
    if let Some(d) = expected {
        verify(reg, d, &bytes)?;
    }
    Ok((media, bytes))
}

/// GET a small JSON blob (config) and check its digest.
async fn fetch_json_blob(reg: &Registry, digest: &str) -> Result<Vec<u8>, PullError> {
    let what = format!("fetching blob {digest}");
    let resp = reg
        .get(Method::GET, &what, &format!("blobs/{digest}"), &[])
        .await?;
    let resp = reg.check(resp, &what, digest).await?;
    let bytes = read_capped(reg, resp, &what).await?;
    verify(reg, digest, &bytes)?;
    Ok(bytes)
}

fn verify(reg: &Registry, digest: &str, bytes: &[u8]) -> Result<(), PullError> {
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(PullError::Digest {
            registry: reg.registry.clone(),
            repository: reg.repository.clone(),
            digest: digest.to_owned(),
            actual,
        });
    }
    Ok(())
}

/// Reads a body of at most [`MAX_JSON_BLOB`] bytes (refused by its
/// Content-Length before reading when that is over).
async fn read_capped(
    reg: &Registry,
    resp: reqwest::Response,
    what: &str,
) -> Result<Vec<u8>, PullError> {
    match read_limited(resp, MAX_JSON_BLOB as usize).await {
        Ok(Body::Full(b)) => Ok(b),
        Ok(Body::TooLarge(n)) => Err(reg.manifest_err(format!(
            "{what}: document of {n} bytes or more, larger than {MAX_JSON_BLOB} bytes"
        ))),
        Err(e) => Err(reg.http_err(what, e)),
    }
}
