//! Importing an OCI image layout through the gRPC API (no `ctr`):
//! lease → content writes with GC labels → per layer Snapshots.Prepare +
//! Diff.Apply + Snapshots.Commit under the chain ID → Images.Create →
//! delete the lease. containerd 1.6 has no Transfer service, so this is the
//! whole import.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, Image, UpdateImageRequest,
};
use containerd_client::types::Descriptor;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::content::{write_bytes, write_file};
use super::resolve::{pick_platform, resolve, ImageRecord};
use super::{sha256_digest, MEDIA_DOCKER_LIST, MEDIA_INDEX};
use crate::client::{Containerd, SNAPSHOTTER};
use crate::error::{Result, RuntimeError};
use crate::labels;
use crate::lease::Lease;

/// Chain IDs of a layer stack: `chain[0] = diff[0]`,
/// `chain[i] = sha256(chain[i-1] + " " + diff[i])`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Imports the OCI image layout at `dir` as image `name` and unpacks it.
/// Idempotent: blobs and snapshots already present are reused.
pub async fn import_layout(c: &Containerd, dir: &Path, name: &str) -> Result<ImageRecord> {
    let layout = Layout {
        dir: dir.to_owned(),
        name: name.to_owned(),
    };
    let (manifest_desc, manifest_bytes) = layout.platform_manifest()?;
    let manifest = ImageManifest::from_reader(manifest_bytes.as_slice())
        .map_err(|e| layout.err(format!("manifest does not parse: {e}")))?;
    let config_desc = manifest.config();
    let config_bytes = layout.read_json_blob(config_desc.digest().as_ref())?;
    let config = ImageConfiguration::from_reader(config_bytes.as_slice())
        .map_err(|e| layout.err(format!("config does not parse: {e}")))?;
    let diff_ids: Vec<String> = config.rootfs().diff_ids().to_vec();
    if diff_ids.len() != manifest.layers().len() || diff_ids.is_empty() {
        return Err(layout.err(format!(
            "{} layers in the manifest but {} diff_ids in the config",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let lease = Lease::create(c, "import").await?;
    let result = async {
        for layer in manifest.layers() {
            let digest = layer.digest().to_string();
            write_file(
                c,
                lease.id(),
                &digest,
                layer.size() as i64,
                &layout.blob_path(&digest)?,
                HashMap::new(),
            )
            .await?;
        }
        let parts = ImageParts {
            manifest_desc,
            manifest_bytes: &manifest_bytes,
            manifest: &manifest,
            config_bytes: &config_bytes,
            diff_ids: &diff_ids,
        };
        finish_image(c, lease.id(), name, parts).await
    }
    .await;
    // The image record now holds everything; drop the lease even on failure
    // (partial content is then garbage-collected).
    let deleted = lease.delete(c).await;
    result?;
    deleted?;
    resolve(c, name).await
}

/// A platform manifest and its config, already read and checked, whose
/// layers are in the content store.
pub(crate) struct ImageParts<'a> {
    /// Descriptor of the platform manifest (the image record's target).
    pub manifest_desc: Descriptor,
    /// The manifest as stored.
    pub manifest_bytes: &'a [u8],
    /// The parsed manifest.
    pub manifest: &'a ImageManifest,
    /// The config blob as stored.
    pub config_bytes: &'a [u8],
    /// The config's `rootfs.diff_ids`, one per layer.
    pub diff_ids: &'a [String],
}

/// The part of an import shared by layouts and registry pulls: writes the
/// config and manifest with their GC labels under `lease`, unpacks the
/// layers and creates (or repoints) the image record `name`.
pub(crate) async fn finish_image(
    c: &Containerd,
    lease: &str,
    name: &str,
    parts: ImageParts<'_>,
) -> Result<()> {
    let ImageParts {
        manifest_desc,
        manifest_bytes,
        manifest,
        config_bytes,
        diff_ids,
    } = parts;
    let config_desc = manifest.config();
    let chains = chain_ids(diff_ids);
    let mut config_labels = HashMap::new();
    config_labels.insert(
        labels::GC_REF_SNAPSHOT_OVERLAYFS.to_owned(),
        chains[chains.len() - 1].clone(),
    );
    write_bytes(
        c,
        lease,
        config_desc.digest().as_ref(),
        config_bytes,
        config_labels,
    )
    .await?;
    let mut manifest_labels = HashMap::new();
    for (i, layer) in manifest.layers().iter().enumerate() {
        manifest_labels.insert(
            format!("{}.{i}", labels::GC_REF_CONTENT),
            layer.digest().to_string(),
        );
    }
    manifest_labels.insert(
        format!("{}.{}", labels::GC_REF_CONTENT, manifest.layers().len()),
        config_desc.digest().to_string(),
    );
    write_bytes(
        c,
        lease,
        &manifest_desc.digest,
        manifest_bytes,
        manifest_labels,
    )
    .await?;
    unpack(c, lease, name, manifest, diff_ids, &chains).await?;
    put_image(c, name, manifest_desc).await
}

/// Applies each layer into a snapshot named by its chain ID.
async fn unpack(
    c: &Containerd,
    lease: &str,
    name: &str,
    manifest: &ImageManifest,
    diff_ids: &[String],
    chains: &[String],
) -> Result<()> {
    let mut snaps = c.snapshots();
    for (i, layer) in manifest.layers().iter().enumerate() {
        let chain = &chains[i];
        let stat = snaps
            .stat(c.req(StatSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: chain.clone(),
            }))
            .await;
        if stat.is_ok() {
            continue;
        }
        let key = format!("outpost-unpack-{:016x}-{chain}", rand::random::<u64>());
        let parent = if i == 0 {
            String::new()
        } else {
            chains[i - 1].clone()
        };
        let mounts = snaps
            .prepare(c.req_leased(
                PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.clone(),
                    parent,
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
            .map_err(|s| RuntimeError::api("snapshots.Prepare", &key, s))?
            .into_inner()
            .mounts;
        let desc = Descriptor {
            media_type: layer.media_type().to_string(),
            digest: layer.digest().to_string(),
            size: layer.size() as i64,
            annotations: HashMap::new(),
        };
        let applied = c
            .diff()
            .apply(c.req_leased(
                ApplyRequest {
                    diff: Some(desc),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                lease,
            ))
            .await;
        let applied = match applied {
            Ok(r) => r.into_inner().applied.map(|d| d.digest).unwrap_or_default(),
            Err(s) => {
                remove_key(c, &key).await;
                return Err(RuntimeError::api(
                    "diff.Apply",
                    layer.digest().to_string(),
                    s,
                ));
            }
        };
        if applied != diff_ids[i] {
            remove_key(c, &key).await;
            return Err(RuntimeError::Image {
                reference: name.to_owned(),
                problem: format!(
                    "layer {} unpacked to {applied}, config says {}",
                    layer.digest(),
                    diff_ids[i]
                ),
            });
        }
        let mut commit_labels = HashMap::new();
        commit_labels.insert(
            labels::SNAPSHOT_UNCOMPRESSED.to_owned(),
            diff_ids[i].clone(),
        );
        match snaps
            .commit(c.req_leased(
                CommitSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    name: chain.clone(),
                    key: key.clone(),
                    labels: commit_labels,
                },
                lease,
            ))
            .await
        {
            Ok(_) => {}
            // A concurrent import of an image sharing this layer won.
            Err(s) if s.code() == tonic::Code::AlreadyExists => remove_key(c, &key).await,
            Err(s) => {
                remove_key(c, &key).await;
                return Err(RuntimeError::api("snapshots.Commit", chain, s));
            }
        }
    }
    Ok(())
}

async fn remove_key(c: &Containerd, key: &str) {
    let _ = c
        .snapshots()
        .remove(c.req(RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_owned(),
        }))
        .await;
}

/// Creates the image record, or points an existing one at the new target.
pub(crate) async fn put_image(c: &Containerd, name: &str, target: Descriptor) -> Result<()> {
    let image = Image {
        name: name.to_owned(),
        labels: HashMap::new(),
        target: Some(target),
        created_at: None,
        updated_at: None,
    };
    match c
        .images()
        .create(c.req(CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => c
            .images()
            .update(c.req(UpdateImageRequest {
                image: Some(image),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["target".into()],
                }),
                source_date_epoch: None,
            }))
            .await
            .map(|_| ())
            .map_err(|s| RuntimeError::api("images.Update", name, s)),
        Err(s) => Err(RuntimeError::api("images.Create", name, s)),
    }
}

/// An OCI image layout directory being imported.
struct Layout {
    dir: PathBuf,
    name: String,
}

impl Layout {
    fn err(&self, problem: String) -> RuntimeError {
        RuntimeError::Image {
            reference: format!("{} (from {})", self.name, self.dir.display()),
            problem,
        }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let (algo, hex) = digest
            .split_once(':')
            .filter(|(a, h)| {
                *a == "sha256" && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .ok_or_else(|| self.err(format!("unsupported digest {digest:?}")))?;
        Ok(self.dir.join("blobs").join(algo).join(hex))
    }

    /// Reads a JSON blob and checks it against its digest.
    fn read_json_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let meta =
            std::fs::metadata(&path).map_err(|e| RuntimeError::io("reading blob", &path, e))?;
        if meta.len() as i64 > super::content::MAX_JSON_BLOB {
            return Err(self.err(format!("blob {digest} is too large for a JSON document")));
        }
        let bytes = std::fs::read(&path).map_err(|e| RuntimeError::io("reading blob", &path, e))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(self.err(format!("blob {digest} has digest {actual}")));
        }
        Ok(bytes)
    }

    /// The manifest for this platform: index.json → (nested index →) manifest.
    fn platform_manifest(&self) -> Result<(Descriptor, Vec<u8>)> {
        let index_path = self.dir.join("index.json");
        let bytes =
            std::fs::read(&index_path).map_err(|e| RuntimeError::io("reading", &index_path, e))?;
        let mut index = ImageIndex::from_reader(bytes.as_slice())
            .map_err(|e| self.err(format!("index.json does not parse: {e}")))?;
        for _ in 0..4 {
            let d = pick_platform(&index)
                .or_else(|| index.manifests().first())
                .ok_or_else(|| self.err("index.json lists no manifest".into()))?
                .clone();
            let media = d.media_type().to_string();
            let digest = d.digest().to_string();
            let blob = self.read_json_blob(&digest)?;
            if media == MEDIA_INDEX || media == MEDIA_DOCKER_LIST {
                index = ImageIndex::from_reader(blob.as_slice())
                    .map_err(|e| self.err(format!("index {digest} does not parse: {e}")))?;
                continue;
            }
            let desc = Descriptor {
                media_type: media,
                digest,
                size: d.size() as i64,
                annotations: HashMap::new(),
            };
            return Ok((desc, blob));
        }
        Err(self.err("indexes nested too deeply".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(chains[1], sha256_digest(b"sha256:aaaa sha256:bbbb"));
        assert!(chain_ids(&[]).is_empty());
    }
}
