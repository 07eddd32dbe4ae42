//! Reading an OCI image layout: index → manifest → config → layer blobs.
//!
//! Built for the containerd importer, which must write the *exact* bytes of
//! the index, manifest and config into containerd's content store so that
//! digests match; every JSON document is therefore returned both parsed and
//! as the raw bytes read from disk ([`JsonBlob`]).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use oci_spec::image::{
    Descriptor, Digest, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
    ANNOTATION_REF_NAME,
};
use serde::de::DeserializeOwned;

use crate::archive;
use crate::digest::{sha256_hex, sha256_reader};
use crate::error::{Error, Result};

/// A JSON blob of the layout: the descriptor that referenced it, its exact
/// bytes (verified against the descriptor's size and digest) and the parsed
/// value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonBlob<T> {
    /// The descriptor it was found through (from `index.json` for a manifest,
    /// from the manifest for a config).
    pub descriptor: Descriptor,
    /// The bytes exactly as stored; write these, not a re-serialisation.
    pub bytes: Vec<u8>,
    /// The parsed document.
    pub value: T,
}

/// An opened OCI image layout directory.
#[derive(Debug)]
pub struct OciLayout {
    dir: PathBuf,
    index_bytes: Vec<u8>,
    index: ImageIndex,
    /// Keeps the unpack directory of [`OciLayout::open_archive`] alive; it is
    /// deleted when the layout is dropped.
    _temp: Option<tempfile::TempDir>,
}

impl OciLayout {
    /// Opens the layout in `dir`: checks `oci-layout` (version 1.x) and parses
    /// `index.json`. Blobs are read lazily.
    pub fn open(dir: impl AsRef<Path>) -> Result<OciLayout> {
        let dir = dir.as_ref().to_owned();
        let marker = dir.join("oci-layout");
        let marker_bytes = read(&marker, "reading")?;
        let header: serde_json::Value =
            serde_json::from_slice(&marker_bytes).map_err(|source| Error::Json {
                what: "oci-layout",
                path: marker.clone(),
                source,
            })?;
        match header.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(v) if v == "1" || v.starts_with("1.") => {}
            other => {
                return Err(Error::layout(
                    &dir,
                    format!("unsupported imageLayoutVersion {other:?} in oci-layout (want 1.x)"),
                ))
            }
        }
        let index_path = dir.join("index.json");
        let index_bytes = read(&index_path, "reading")?;
        let index = parse("index.json", &index_path, &index_bytes)?;
        Ok(OciLayout {
            dir,
            index_bytes,
            index,
            _temp: None,
        })
    }

    /// Unpacks the `oci-archive` tar at `archive` into a new temporary
    /// directory (under `$TMPDIR`) and opens it. The directory is removed
    /// when the returned value is dropped; use [`OciLayout::open_archive_in`]
    /// to choose where the blobs go (e.g. a persistent disk for big images).
    pub fn open_archive(archive: impl AsRef<Path>) -> Result<OciLayout> {
        let archive = archive.as_ref();
        let temp = tempfile::Builder::new()
            .prefix("outpost-oci-")
            .tempdir()
            .map_err(Error::io("creating temporary directory for", archive))?;
        archive::unpack(archive, temp.path())?;
        let mut layout = OciLayout::open(temp.path())?;
        layout._temp = Some(temp);
        Ok(layout)
    }

    /// Unpacks the `oci-archive` tar at `archive` into `dest` (created if
    /// missing, must be empty otherwise) and opens it. `dest` is kept.
    pub fn open_archive_in(archive: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<OciLayout> {
        archive::unpack(archive.as_ref(), dest.as_ref())?;
        OciLayout::open(dest)
    }

    /// The layout directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `index.json`.
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }

    /// `index.json` exactly as stored.
    pub fn index_bytes(&self) -> &[u8] {
        &self.index_bytes
    }

    /// The manifest of the first image-manifest entry in `index.json` (the
    /// only one in layouts built by this crate).
    pub fn manifest(&self) -> Result<JsonBlob<ImageManifest>> {
        let desc = self
            .index
            .manifests()
            .iter()
            .find(|d| d.media_type() == &MediaType::ImageManifest)
            .ok_or_else(|| {
                Error::layout(
                    &self.dir,
                    "index.json lists no image manifest \
                     (nested indexes and Docker manifests are not supported)",
                )
            })?;
        self.manifest_for(desc)
    }

    /// The manifest whose index entry carries the annotation
    /// `org.opencontainers.image.ref.name` equal to `ref_name` (for layouts
    /// built here: `<name>:<tag>`, e.g. `hello:latest`).
    pub fn manifest_by_ref(&self, ref_name: &str) -> Result<JsonBlob<ImageManifest>> {
        let desc = self
            .index
            .manifests()
            .iter()
            .find(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME))
                    .is_some_and(|r| r == ref_name)
            })
            .ok_or_else(|| {
                Error::layout(
                    &self.dir,
                    format!(
                        "no manifest annotated {ANNOTATION_REF_NAME}={ref_name:?} in index.json \
                         (present: {:?})",
                        self.ref_names()
                    ),
                )
            })?;
        self.manifest_for(desc)
    }

    /// Every `org.opencontainers.image.ref.name` in `index.json`, in order.
    pub fn ref_names(&self) -> Vec<String> {
        self.index
            .manifests()
            .iter()
            .filter_map(|d| d.annotations().as_ref()?.get(ANNOTATION_REF_NAME).cloned())
            .collect()
    }

    /// Reads and verifies the manifest that `desc` (an `index.json` entry)
    /// points to.
    pub fn manifest_for(&self, desc: &Descriptor) -> Result<JsonBlob<ImageManifest>> {
        self.json_blob(desc, &MediaType::ImageManifest, "manifest")
    }

    /// The image config of [`OciLayout::manifest`].
    pub fn config(&self) -> Result<JsonBlob<ImageConfiguration>> {
        self.config_for(&self.manifest()?.value)
    }

    /// Reads and verifies the image config that `manifest` points to.
    pub fn config_for(&self, manifest: &ImageManifest) -> Result<JsonBlob<ImageConfiguration>> {
        self.json_blob(manifest.config(), &MediaType::ImageConfig, "image config")
    }

    /// Where the blob `digest` is stored: `<dir>/blobs/<algorithm>/<encoded>`.
    /// `Digest` only admits `[a-z0-9+._-]` algorithms and `[a-zA-Z0-9=_-]`
    /// encodings, so the path cannot leave the layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }

    /// Opens the blob `digest` for reading. The content is *not* verified
    /// here (containerd's content store verifies on commit; see
    /// [`OciLayout::verify`] for a full check).
    pub fn blob_reader(&self, digest: &Digest) -> Result<BufReader<File>> {
        let path = self.blob_path(digest);
        File::open(&path)
            .map(BufReader::new)
            .map_err(|e| self.blob_err(digest, &path, format!("cannot open: {e}")))
    }

    /// Reads the blob that `desc` points to, checking its size and digest.
    pub fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let path = self.blob_path(desc.digest());
        let bytes = read(&path, "reading blob")?;
        if bytes.len() as u64 != desc.size() {
            return Err(self.blob_err(
                desc.digest(),
                &path,
                format!(
                    "size is {} bytes, descriptor says {}",
                    bytes.len(),
                    desc.size()
                ),
            ));
        }
        check_sha256(desc.digest())?;
        let actual = sha256_hex(&bytes);
        if actual != desc.digest().digest() {
            return Err(self.blob_err(
                desc.digest(),
                &path,
                format!("content hashes to sha256:{actual}"),
            ));
        }
        Ok(bytes)
    }

    /// Full structural check of every image in the index: each manifest and
    /// config is present with the right media type, size and digest; each
    /// layer blob hashes to its name and size; and each layer, uncompressed,
    /// hashes to the matching `rootfs.diff_ids` entry.
    pub fn verify(&self) -> Result<()> {
        if self.index.schema_version() != 2 {
            return Err(Error::layout(
                &self.dir,
                "index.json schemaVersion is not 2",
            ));
        }
        if self.index.manifests().is_empty() {
            return Err(Error::layout(&self.dir, "index.json lists no manifests"));
        }
        for desc in self.index.manifests() {
            let manifest = self.manifest_for(desc)?;
            let config = self.config_for(&manifest.value)?;
            let diff_ids = config.value.rootfs().diff_ids();
            let layers = manifest.value.layers();
            if diff_ids.len() != layers.len() {
                return Err(Error::layout(
                    &self.dir,
                    format!(
                        "manifest {} has {} layers but its config lists {} diff_ids",
                        desc.digest(),
                        layers.len(),
                        diff_ids.len()
                    ),
                ));
            }
            for (layer, diff_id) in layers.iter().zip(diff_ids) {
                self.verify_layer(layer, diff_id)?;
            }
        }
        Ok(())
    }

    fn verify_layer(&self, layer: &Descriptor, diff_id: &str) -> Result<()> {
        let digest = layer.digest();
        check_sha256(digest)?;
        let path = self.blob_path(digest);
        let (hex, size) = sha256_reader(self.blob_reader(digest)?)
            .map_err(|e| self.blob_err(digest, &path, format!("cannot read: {e}")))?;
        if hex != digest.digest() || size != layer.size() {
            return Err(self.blob_err(
                digest,
                &path,
                format!(
                    "content is sha256:{hex} ({size} bytes), descriptor says {} bytes",
                    layer.size()
                ),
            ));
        }
        let uncompressed: Box<dyn Read> = match layer.media_type() {
            MediaType::ImageLayerGzip => Box::new(GzDecoder::new(self.blob_reader(digest)?)),
            MediaType::ImageLayer => Box::new(self.blob_reader(digest)?),
            other => {
                return Err(self.blob_err(
                    digest,
                    &path,
                    format!("layer media type {other} is not supported"),
                ))
            }
        };
        let (tar_hex, _) = sha256_reader(uncompressed)
            .map_err(|e| self.blob_err(digest, &path, format!("cannot decompress: {e}")))?;
        if format!("sha256:{tar_hex}") != diff_id {
            return Err(self.blob_err(
                digest,
                &path,
                format!("uncompressed tar is sha256:{tar_hex}, config diff_id is {diff_id}"),
            ));
        }
        Ok(())
    }

    fn json_blob<T: DeserializeOwned>(
        &self,
        desc: &Descriptor,
        want: &MediaType,
        what: &'static str,
    ) -> Result<JsonBlob<T>> {
        if desc.media_type() != want {
            return Err(self.blob_err(
                desc.digest(),
                &self.blob_path(desc.digest()),
                format!(
                    "{what} has media type {}, expected {want}",
                    desc.media_type()
                ),
            ));
        }
        let bytes = self.read_blob(desc)?;
        let value = parse(what, &self.blob_path(desc.digest()), &bytes)?;
        Ok(JsonBlob {
            descriptor: desc.clone(),
            bytes,
            value,
        })
    }

    fn blob_err(&self, digest: &Digest, path: &Path, problem: String) -> Error {
        Error::Blob {
            digest: digest.to_string(),
            path: path.to_owned(),
            problem,
        }
    }
}

fn check_sha256(digest: &Digest) -> Result<()> {
    if digest.algorithm() == &DigestAlgorithm::Sha256 {
        Ok(())
    } else {
        Err(Error::Digest {
            digest: digest.to_string(),
            problem: "only sha256 blobs can be verified".into(),
        })
    }
}

fn read(path: &Path, context: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e: io::Error| Error::Io {
        context,
        path: path.to_owned(),
        source: e,
    })
}

fn parse<T: DeserializeOwned>(what: &'static str, path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what,
        path: path.to_owned(),
        source,
    })
}
