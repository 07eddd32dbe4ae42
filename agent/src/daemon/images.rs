//! Making an app's image available in the user containerd: references that
//! name a registry host (`registry.example:5000/team/app:1.2`, `…@sha256:…`)
//! are pulled; short names (`hello:latest`) are imported from a local
//! directory of OCI layouts (`--images DIR`, one `<name>/` layout per image,
//! as `outpost-ocibuild build-all` writes them).
//!
//! Registries on loopback (`localhost`, `127.*`, `[::1]`) are spoken to over
//! plain HTTP, as Docker treats them as insecure by default; every other
//! registry over HTTPS with the system roots.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use outpost_api::{LocalName, RegistryConfig};
use outpost_runtime::image::{self, ImageRecord};
use outpost_runtime::pull::{self, ErrorClass, PullError, PullOptions, Reference, RegistryOptions};
use outpost_runtime::Runtime;

use super::downloads::Failure;

/// A short-name image that cannot be found locally.
#[derive(Debug, thiserror::Error)]
pub enum LocalImageError {
    /// No directory of layouts is configured.
    #[error("image {reference} is not in the user containerd, names no registry host and no local image directory is configured (--images)")]
    NoDirectory {
        /// The image reference.
        reference: String,
    },
    /// The directory has no layout for it.
    #[error("image {reference} is not in the user containerd nor at {} (use host[:port]/repo:tag to pull it from a registry)", layout.display())]
    NotInDirectory {
        /// The image reference.
        reference: String,
        /// Where its layout was looked for.
        layout: PathBuf,
    },
}

/// Whether retrying [`ensure_with`] can help by itself: pull errors by
/// their class, a missing local layout never, anything else (containerd
/// unavailable, an import step failing) may.
pub fn error_class(e: &anyhow::Error) -> ErrorClass {
    if let Some(p) = e.downcast_ref::<PullError>() {
        return p.class();
    }
    if e.downcast_ref::<LocalImageError>().is_some() {
        return ErrorClass::Permanent;
    }
    ErrorClass::Transient
}

/// A failed [`ensure_with`] as the download stage reports it.
pub fn failure(reference: &str, e: &anyhow::Error) -> Failure {
    let message = if e.downcast_ref::<LocalImageError>().is_some() {
        format!("{e:#}")
    } else {
        format!("fetching image {reference}: {e:#}")
    };
    Failure {
        class: error_class(e),
        message,
    }
}

/// The local OCI layout directory for a short name under `dir`. Refuses
/// (whatever validation let through) any name that is not a valid local
/// image name and one plain path component, so a reference like
/// `..:latest` never leaves `dir`.
pub fn local_layout(dir: &Path, reference: &str) -> Result<PathBuf> {
    let local = LocalName::parse(reference)?;
    let mut parts = Path::new(&local.name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(c)), None) if !local.name.starts_with('.') => {
            Ok(dir.join(c))
        }
        _ => bail!(
            "image {reference:?}: {:?} is not a plain directory name under {}",
            local.name,
            dir.display()
        ),
    }
}

/// True for registries reached over plain HTTP (loopback only).
pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map(|(h, _)| h)
        .unwrap_or_else(|| {
            registry
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(registry)
        });
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Pull options for `reference` on this device: plain HTTP on loopback,
/// disk budget checked on the user containerd's root.
pub fn pull_options(rt: &Runtime, reference: &Reference) -> PullOptions {
    PullOptions {
        registry: RegistryOptions {
            plain_http: is_loopback(&reference.registry),
            ..RegistryOptions::default()
        },
        content_root: Some(rt.layout().user_root()),
        ..PullOptions::default()
    }
}

/// Pull options for `reference` with the device config's settings for its
/// registry (credentials, CA, plain HTTP) when it has any.
pub fn pull_options_with(
    rt: &Runtime,
    reference: &Reference,
    registries: &[RegistryConfig],
) -> PullOptions {
    let mut opts = pull_options(rt, reference);
    if let Some(r) = registries.iter().find(|r| r.host == reference.registry) {
        // An entry for the host decides (a loopback registry with a CA is HTTPS).
        opts.registry.plain_http = r.plain_http;
        opts.registry.ca_pem = r.ca_pem.as_ref().map(|c| c.as_bytes().to_vec());
        if let (Some(u), Some(p)) = (&r.username, &r.password) {
            opts.registry.credentials = Some(pull::Credentials {
                username: u.clone(),
                password: p.clone(),
            });
        }
    }
    opts
}

/// Resolves `reference`, pulling it from its registry or importing it from
/// `local` when containerd does not have it yet.
pub async fn ensure(rt: &Runtime, local: Option<&Path>, reference: &str) -> Result<ImageRecord> {
    ensure_with(rt, local, reference, &[], None).await
}

/// [`ensure`] with the device's registry settings, reporting pull progress.
pub async fn ensure_with(
    rt: &Runtime,
    local: Option<&Path>,
    reference: &str,
    registries: &[RegistryConfig],
    progress: Option<tokio::sync::watch::Sender<pull::PullProgress>>,
) -> Result<ImageRecord> {
    match image::resolve(rt.client(), reference).await {
        Ok(r) => return Ok(r),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    if pull::names_registry(reference) {
        let parsed = Reference::parse(reference)?;
        tracing::info!(image = reference, "pulling image");
        let mut opts = pull_options_with(rt, &parsed, registries);
        opts.progress = progress;
        return Ok(pull::pull(rt.client(), reference, &opts).await?);
    }
    let Some(dir) = local else {
        return Err(LocalImageError::NoDirectory {
            reference: reference.to_owned(),
        }
        .into());
    };
    let layout = local_layout(dir, reference)?;
    if !layout.join("index.json").exists() {
        return Err(LocalImageError::NotInDirectory {
            reference: reference.to_owned(),
            layout,
        }
        .into());
    }
    tracing::info!(image = reference, from = %layout.display(), "importing image");
    Ok(rt.import_layout(&layout, reference).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_layouts_stay_in_the_images_directory() {
        let root = tempfile::tempdir().unwrap();
        let images = root.path().join("images");
        std::fs::create_dir_all(images.join("hello")).unwrap();
        // A layout one level up, where `..:latest` would have found it.
        std::fs::write(root.path().join("index.json"), "{}").unwrap();
        assert_eq!(
            local_layout(&images, "hello:latest").unwrap(),
            images.join("hello")
        );
        for bad in [
            "..:latest",
            "..",
            ".:latest",
            "../x:1",
            "a/../..:1",
            "/etc:1",
            "x\0y",
        ] {
            let e = local_layout(&images, bad).unwrap_err().to_string();
            assert!(
                e.contains("image reference") || e.contains("not a plain"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn missing_local_images_are_permanent_other_errors_transient() {
        let missing = anyhow::Error::new(LocalImageError::NoDirectory {
            reference: "hello:latest".into(),
        });
        assert_eq!(error_class(&missing), ErrorClass::Permanent);
        let f = failure("hello:latest", &missing);
        assert!(
            f.message.starts_with("image hello:latest is not"),
            "{}",
            f.message
        );
        let pulled = anyhow::Error::new(PullError::Unauthorized {
            registry: "r:5000".into(),
            repository: "x".into(),
            with_credentials: false,
        });
        assert_eq!(error_class(&pulled), ErrorClass::Permanent);
        assert!(failure("r:5000/x:1", &pulled)
            .message
            .starts_with("fetching image r:5000/x:1: registry r:5000 refused"));
        let other = anyhow::anyhow!("containerd: connection refused");
        assert_eq!(error_class(&other), ErrorClass::Transient);
    }

    #[test]
    fn loopback_registries() {
        for (reg, want) in [
            ("localhost:5000", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3", true),
            ("[::1]:5000", true),
            ("registry.example:5000", false),
            ("10.0.0.1:5000", false),
        ] {
            assert_eq!(is_loopback(reg), want, "{reg}");
        }
    }
}
