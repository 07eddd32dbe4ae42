//! The push counterpart, enough for tests, benches and `make run` to fill a
//! local registry from `outpost-ocibuild` layouts: monolithic blob uploads
//! (POST, then PUT with `?digest=`), then the manifest under a tag.

use std::path::Path;

use oci_spec::image::{ImageIndex, ImageManifest};
use reqwest::{Method, StatusCode};

use super::error::PullError;
use super::registry::{Registry, RegistryOptions};
use super::Reference;
use crate::error::RuntimeError;
use crate::image::MEDIA_MANIFEST;

/// Pushes the single-manifest OCI layout at `dir` as `reference` (its tag);
/// returns the manifest digest. Blobs the registry has are not sent again.
pub async fn push_layout(
    dir: &Path,
    reference: &str,
    opts: &RegistryOptions,
) -> Result<String, PullError> {
    let r = Reference::parse(reference)?;
    let reg = Registry::new(&r, opts)?;
    let index_path = dir.join("index.json");
    let index = ImageIndex::from_file(&index_path)
        .map_err(|e| reg.manifest_err(format!("{}: {e}", index_path.display())))?;
    let desc = index
        .manifests()
        .first()
        .ok_or_else(|| reg.manifest_err("index.json lists no manifest".into()))?;
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest_bytes = std::fs::read(blob(desc.digest().as_ref()))
        .map_err(|e| RuntimeError::io("reading manifest", blob(desc.digest().as_ref()), e))?;
    let manifest = ImageManifest::from_reader(manifest_bytes.as_slice())
        .map_err(|e| reg.manifest_err(format!("manifest: {e}")))?;
    let mut blobs: Vec<String> = manifest
        .layers()
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    blobs.push(manifest.config().digest().to_string());
    for d in blobs {
        push_blob(&reg, &d, &blob(&d)).await?;
    }
    put_manifest(&reg, r.object(), MEDIA_MANIFEST, manifest_bytes).await
}

/// Uploads the file at `path` as blob `digest` unless the registry has it.
pub async fn push_blob(reg: &Registry, digest: &str, path: &Path) -> Result<(), PullError> {
    let what = format!("checking blob {digest}");
    let head = reg
        .get(Method::HEAD, &what, &format!("blobs/{digest}"), &[])
        .await?;
    if head.status() == StatusCode::OK {
        return Ok(());
    }
    let what = format!("starting upload of {digest}");
    let start = reg
        .send(&what, |h| h.post(reg.url("blobs/uploads/")))
        .await?;
    let start = reg.check(start, &what, "upload").await?;
    let location = start
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| reg.manifest_err("upload response has no Location".into()))?
        .to_owned();
    let mut url = match reqwest::Url::parse(&location) {
        Ok(u) => u,
        Err(_) => {
            let base = reqwest::Url::parse(&reg.url(""))
                .map_err(|e| reg.manifest_err(format!("bad upload location {location:?}: {e}")))?;
            base.join(&location)
                .map_err(|e| reg.manifest_err(format!("bad upload location {location:?}: {e}")))?
        }
    };
    url.query_pairs_mut().append_pair("digest", digest);
    let len = std::fs::metadata(path)
        .map_err(|e| RuntimeError::io("reading blob", path, e))?
        .len();
    let what = format!("uploading {digest}");
    let resp = reg
        .send(&what, |h| {
            let body = match std::fs::File::open(path) {
                Ok(f) => reqwest::Body::from(tokio::fs::File::from_std(f)),
                Err(_) => reqwest::Body::from(Vec::new()),
            };
            h.put(url.clone())
                .header("content-type", "application/octet-stream")
                .header("content-length", len)
                .body(body)
        })
        .await?;
    reg.check(resp, &what, digest).await?;
    Ok(())
}

/// PUTs a manifest or index under `tag_or_digest`; returns its digest.
pub async fn put_manifest(
    reg: &Registry,
    tag_or_digest: &str,
    media_type: &str,
    bytes: Vec<u8>,
) -> Result<String, PullError> {
    let what = format!("putting manifest {tag_or_digest}");
    let url = reg.url(&format!("manifests/{tag_or_digest}"));
    let resp = reg
        .send(&what, |h| {
            h.put(&url)
                .header("content-type", media_type)
                .body(bytes.clone())
        })
        .await?;
    reg.check(resp, &what, tag_or_digest).await?;
    Ok(crate::image::sha256_digest(&bytes))
}
