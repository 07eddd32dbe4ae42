//! Reading an image record back from containerd: manifest, config, chain ID.

use containerd_client::services::v1::{DeleteImageRequest, GetImageRequest, ListImagesRequest};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::content::read_all;
use super::{host_arch, MEDIA_DOCKER_LIST, MEDIA_INDEX};
use crate::client::Containerd;
use crate::error::{Result, RuntimeError};

/// What the runtime needs to know about an image in the store.
#[derive(Clone, Debug)]
pub struct ImageRecord {
    /// Image name (the reference it was imported or pulled as).
    pub name: String,
    /// Digest of the platform manifest.
    pub manifest_digest: String,
    /// Digest of the image config blob.
    pub config_digest: String,
    /// The OCI image config (env, entrypoint, labels, stop signal, …).
    pub config: ImageConfiguration,
    /// Chain ID of the top layer: the parent of the app's writable snapshot.
    pub chain_id: String,
    /// Compressed size of all layers plus config, bytes.
    pub size: u64,
}

/// Looks up `name` in the store and reads its manifest and config.
pub async fn resolve(c: &Containerd, name: &str) -> Result<ImageRecord> {
    let image = match c
        .images()
        .get(c.req(GetImageRequest {
            name: name.to_owned(),
        }))
        .await
    {
        Ok(r) => r.into_inner().image,
        Err(s) if s.code() == tonic::Code::NotFound => None,
        Err(s) => return Err(RuntimeError::api("images.Get", name, s)),
    };
    let target = image
        .and_then(|i| i.target)
        .ok_or_else(|| RuntimeError::ImageNotFound(name.to_owned()))?;
    let mut digest = target.digest;
    let mut media = target.media_type;
    // An index (multi-platform image): pick this machine's manifest.
    for _ in 0..4 {
        if media != MEDIA_INDEX && media != MEDIA_DOCKER_LIST {
            break;
        }
        let bytes = read_all(c, &digest).await?;
        let index = ImageIndex::from_reader(bytes.as_slice()).map_err(|e| bad(name, &digest, e))?;
        let m = pick_platform(&index).ok_or_else(|| RuntimeError::Image {
            reference: name.to_owned(),
            problem: format!("no manifest for linux/{} in index {digest}", host_arch()),
        })?;
        digest = m.digest().to_string();
        media = m.media_type().to_string();
    }
    let manifest_bytes = read_all(c, &digest).await?;
    let manifest =
        ImageManifest::from_reader(manifest_bytes.as_slice()).map_err(|e| bad(name, &digest, e))?;
    let config_digest = manifest.config().digest().to_string();
    let config_bytes = read_all(c, &config_digest).await?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice())
        .map_err(|e| bad(name, &config_digest, e))?;
    let diff_ids: Vec<String> = config.rootfs().diff_ids().to_vec();
    let chain_id = super::chain_ids(&diff_ids)
        .pop()
        .ok_or_else(|| RuntimeError::Image {
            reference: name.to_owned(),
            problem: "image has no layers".into(),
        })?;
    let size = manifest.layers().iter().map(|l| l.size()).sum::<u64>() + manifest.config().size();
    Ok(ImageRecord {
        name: name.to_owned(),
        manifest_digest: digest,
        config_digest,
        config,
        chain_id,
        size,
    })
}

/// The manifest descriptor for linux on this machine's architecture.
pub(crate) fn pick_platform(index: &ImageIndex) -> Option<&oci_spec::image::Descriptor> {
    let arch = host_arch();
    index
        .manifests()
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .map(|p| p.os().to_string() == "linux" && p.architecture().to_string() == arch)
                .unwrap_or(false)
        })
        .or_else(|| index.manifests().iter().find(|m| m.platform().is_none()))
}

/// Names of all images in the namespace.
pub async fn list_images(c: &Containerd) -> Result<Vec<String>> {
    let r = c
        .images()
        .list(c.req(ListImagesRequest { filters: vec![] }))
        .await
        .map_err(|s| RuntimeError::api("images.List", c.namespace(), s))?;
    Ok(r.into_inner().images.into_iter().map(|i| i.name).collect())
}

/// Deletes an image record (content and snapshots go at the next GC).
pub async fn delete_image(c: &Containerd, name: &str) -> Result<()> {
    match c
        .images()
        .delete(c.req(DeleteImageRequest {
            name: name.to_owned(),
            sync: true,
            target: None,
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(RuntimeError::api("images.Delete", name, s)),
    }
}

fn bad(name: &str, digest: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Image {
        reference: name.to_owned(),
        problem: format!("blob {digest} does not parse: {e}"),
    }
}
