//! Pulling images from OCI-distribution registries into the user
//! containerd (containerd 1.6 has no Transfer service, so this is the
//! client side of the distribution API, done by hand):
//!
//! reference → manifest (OCI or Docker v2; index / manifest list → the
//! linux/[`host_arch`](crate::image::host_arch) entry) → config → disk
//! budget check → lease → layers streamed into the content store with
//! sha256 checked while streaming (bounded concurrency, blobs already
//! present skipped, interrupted transfers resumed with `Range`) → the same
//! GC labels, unpack and image record as [`import_layout`](crate::image::import_layout).
//!
//! The image record is named by the reference as given and targets the
//! platform manifest (the index itself is not stored, as for layouts).
//!
//! # Current limitations
//! * A transfer is resumed within one pull; after a process restart the
//!   blob is fetched again from byte 0 (see [`fetch`] module docs).
//! * Only `sha256` digests; no foreign/non-distributable layers.
//! * No mirrors and no per-registry credential store: callers pass
//!   [`RegistryOptions`] per pull.

mod auth;
pub mod budget;
mod error;
mod fetch;
pub mod gc;
mod manifest;
mod progress;
pub mod push;
mod registry;

use std::path::PathBuf;

use tokio::sync::watch;

pub use auth::Credentials;
pub use error::{ErrorClass, PullError};
pub use manifest::{resolve as resolve_manifest, Resolved};
pub use outpost_api::reference::{names_registry, Reference, ReferenceError};
pub use progress::PullProgress;
pub use registry::{Registry, RegistryOptions};

use crate::client::Containerd;
use crate::image::{self, ImageParts, ImageRecord};
use crate::lease::Lease;
use fetch::{fetch_blob, Blob};
use progress::Progress;

/// Default number of blobs fetched at once by one pull.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Registry access (credentials, CA, plain HTTP).
    pub registry: RegistryOptions,
    /// Directory on the content store's filesystem (containerd's root);
    /// `None` skips the disk-budget check.
    pub content_root: Option<PathBuf>,
    /// Bytes that must stay free after the pull.
    pub reserve: u64,
    /// Blobs fetched at once.
    pub concurrency: usize,
    /// Receives bytes done / total as the pull goes.
    pub progress: Option<watch::Sender<PullProgress>>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            registry: RegistryOptions::default(),
            content_root: None,
            reserve: budget::DEFAULT_RESERVE,
            concurrency: DEFAULT_CONCURRENCY,
            progress: None,
        }
    }
}

/// Pulls `reference` into the store behind `c`, unpacks it and returns
/// its record. Idempotent: blobs and snapshots already present are reused.
pub async fn pull(
    c: &Containerd,
    reference: &str,
    opts: &PullOptions,
) -> Result<ImageRecord, PullError> {
    let r = Reference::parse(reference)?;
    let reg = Registry::new(&r, &opts.registry)?;
    let resolved = manifest::resolve(&reg, &r).await?;
    let layers: Vec<Blob> = resolved
        .manifest
        .layers()
        .iter()
        .map(|l| Blob {
            digest: l.digest().to_string(),
            size: l.size(),
        })
        .collect();

    // What still has to come over the wire (shared layers are skipped).
    let mut need = resolved.manifest.config().size() + resolved.manifest_bytes.len() as u64;
    for l in &layers {
        if image::content::info(c, &l.digest).await?.is_none() {
            need += l.size;
        }
    }
    if let Some(root) = &opts.content_root {
        budget::check(reference, root, need, opts.reserve)?;
    }
    let progress = Progress::new(resolved.size(), opts.progress.clone());
    tracing::info!(image = reference, manifest = %resolved.manifest_digest, bytes = need, "pulling image");

    let lease = Lease::create(c, "pull").await?;
    let result = async {
        // Bounded concurrency; a plain `Vec` of futures (not a stream
        // combinator over a closure) keeps the future `Send` for callers
        // that spawn it.
        let slots = tokio::sync::Semaphore::new(opts.concurrency.max(1));
        let mut fetches = Vec::with_capacity(layers.len());
        for b in &layers {
            let (slots, reg, progress, lease) = (&slots, &reg, &progress, lease.id());
            fetches.push(async move {
                let _slot = slots.acquire().await;
                fetch_blob(c, reg, lease, b, progress).await
            });
        }
        futures::future::try_join_all(fetches).await?;
        let parts = ImageParts {
            manifest_desc: containerd_client::types::Descriptor {
                media_type: resolved.manifest_media_type.clone(),
                digest: resolved.manifest_digest.clone(),
                size: resolved.manifest_bytes.len() as i64,
                annotations: Default::default(),
            },
            manifest_bytes: &resolved.manifest_bytes,
            manifest: &resolved.manifest,
            config_bytes: &resolved.config_bytes,
            diff_ids: &resolved.diff_ids,
        };
        image::finish_image(c, lease.id(), reference, parts).await?;
        progress.add(resolved.manifest.config().size());
        Ok::<(), PullError>(())
    }
    .await;
    let deleted = lease.delete(c).await;
    result?;
    deleted?;
    Ok(image::resolve(c, reference).await?)
}
