//! Images in the user containerd: import from OCI layouts, unpack into
//! overlayfs snapshots, and read back what an app needs to run.

pub mod content;
mod import;
mod resolve;

pub use import::{chain_ids, import_layout};
pub(crate) use import::{finish_image, ImageParts};
pub(crate) use resolve::pick_platform;
pub use resolve::{delete_image, list_images, resolve, ImageRecord};

/// OCI manifest media type.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI index media type.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 manifest media type.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 manifest list media type.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The GOARCH name of the machine we run on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}
