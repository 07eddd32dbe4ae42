//! Making an app's image available in the user containerd. Until registry
//! pulls exist, images come from a local directory of OCI layouts
//! (`--images DIR`, one `<name>/` layout per image, as `outpost-ocibuild
//! build-all` writes them).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use outpost_runtime::image::{self, ImageRecord};
use outpost_runtime::Runtime;

/// The layout directory name for a reference: its last path component
/// without tag or digest (`registry:5000/team/hello:1.2` → `hello`).
pub fn layout_name(reference: &str) -> &str {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let last = last.split('@').next().unwrap_or(last);
    last.split(':').next().unwrap_or(last)
}

/// Resolves `reference`, importing it from `local` when containerd does not
/// have it yet.
pub async fn ensure(rt: &Runtime, local: Option<&Path>, reference: &str) -> Result<ImageRecord> {
    match image::resolve(rt.client(), reference).await {
        Ok(r) => return Ok(r),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let Some(dir) = local else {
        bail!("image {reference} is not in the user containerd and no local image directory is configured (--images)");
    };
    let layout: PathBuf = dir.join(layout_name(reference));
    if !layout.join("index.json").exists() {
        bail!("image {reference} is not in the user containerd nor at {} (registry pulls are not supported yet)", layout.display());
    }
    tracing::info!(image = reference, from = %layout.display(), "importing image");
    Ok(rt.import_layout(&layout, reference).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names() {
        assert_eq!(layout_name("hello:latest"), "hello");
        assert_eq!(
            layout_name("registry.local:5000/outpost/hello:latest"),
            "hello"
        );
        assert_eq!(layout_name("r/x@sha256:abc"), "x");
        assert_eq!(layout_name("plain"), "plain");
    }
}
