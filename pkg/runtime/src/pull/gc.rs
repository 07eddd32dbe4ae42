//! Image garbage collection: image records no app needs (neither the
//! current nor the known-good config) are deleted once older than a grace
//! period; containerd's own GC then takes their content and snapshots
//! (deletes are `sync`, so that happens before this returns).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::ListImagesRequest;

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};
use crate::image::delete_image;

/// Deletes every image whose name is not in `keep` and that was last
/// created or updated more than `grace` ago; returns the names deleted.
pub async fn collect_images(
    c: &Containerd,
    keep: &HashSet<String>,
    grace: Duration,
) -> Result<Vec<String>> {
    let images = c
        .images()
        .list(c.req(ListImagesRequest { filters: vec![] }))
        .await
        .map_err(|s| RuntimeError::api("images.List", c.namespace(), s))?
        .into_inner()
        .images;
    let now = SystemTime::now();
    let mut deleted = Vec::new();
    for img in images {
        if keep.contains(&img.name) {
            continue;
        }
        let touched = img
            .updated_at
            .or(img.created_at)
            .map(|t| {
                SystemTime::UNIX_EPOCH
                    + Duration::new(t.seconds.max(0) as u64, t.nanos.max(0) as u32)
            })
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if now.duration_since(touched).unwrap_or_default() < grace {
            continue;
        }
        tracing::info!(image = %img.name, "deleting unreferenced image");
        delete_image(c, &img.name).await?;
        deleted.push(img.name);
    }
    Ok(deleted)
}
