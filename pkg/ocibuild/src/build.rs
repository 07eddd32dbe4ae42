//! From an [`ImageDef`] to an OCI image layout directory.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder, ANNOTATION_REF_NAME,
};
use serde::Serialize;

use crate::def::{ConfigDef, ImageDef};
use crate::digest::{canonical_json, sha256_digest, sha256_hex};
use crate::error::{Error, Result};
use crate::layer;

/// Timestamp written to the config and history: the Unix epoch, so that
/// builds are reproducible.
const EPOCH: &str = "1970-01-01T00:00:00Z";
/// Content of the `oci-layout` file.
pub(crate) const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// A layer as written to the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    /// Digest of the compressed blob (what the manifest references).
    pub digest: Digest,
    /// Digest of the uncompressed tar (what `rootfs.diff_ids` lists).
    pub diff_id: Digest,
    /// Size in bytes of the compressed blob.
    pub size: u64,
    /// Always `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: MediaType,
}

/// The result of [`build`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuiltImage {
    /// The OCI image layout directory that was written.
    pub layout_dir: PathBuf,
    /// Digest of the image manifest (the image's identity).
    pub manifest_digest: Digest,
    /// Digest of the image config.
    pub config_digest: Digest,
    /// Layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// `<name>:<tag>`, also the index's `org.opencontainers.image.ref.name`.
    pub reference: String,
}

/// Builds `def` into the OCI image layout directory `out_dir`.
///
/// Relative `from:` paths are resolved against `base_dir` (normally the
/// directory that holds `image.yaml`). The layout is assembled in a sibling
/// staging directory and moved into place at the end, so a failed build
/// leaves any previous layout untouched. An existing `out_dir` is replaced
/// only if it is empty or is an OCI layout (has an `oci-layout` file);
/// anything else is refused rather than deleted.
pub fn build(def: &ImageDef, base_dir: &Path, out_dir: &Path) -> Result<BuiltImage> {
    def.validate(Path::new("<in-memory definition>"))?;
    check_replaceable(out_dir)?;
    let staging = staging_dir(out_dir)?;
    let result = write_layout(def, base_dir, &staging);
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if out_dir.exists() {
        fs::remove_dir_all(out_dir).map_err(Error::io("removing old layout", out_dir))?;
    }
    fs::rename(&staging, out_dir).map_err(Error::io("moving staged layout into", out_dir))?;
    Ok(BuiltImage {
        layout_dir: out_dir.to_owned(),
        ..built
    })
}

/// Builds every `<images_dir>/<name>/image.yaml` into `<out_dir>/<name>/`,
/// in name order, stopping at the first failure.
pub fn build_all(images_dir: &Path, out_dir: &Path) -> Result<Vec<BuiltImage>> {
    let mut built = Vec::new();
    for (name, yaml) in discover(images_dir)? {
        let def = ImageDef::load(&yaml)?;
        let base = yaml.parent().unwrap_or(Path::new("."));
        built.push(build(&def, base, &out_dir.join(name))?);
    }
    Ok(built)
}

/// `(directory name, image.yaml path)` of every image under `images_dir`,
/// sorted by name. Subdirectories without an `image.yaml` are skipped.
pub(crate) fn discover(images_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = fs::read_dir(images_dir).map_err(Error::io("listing", images_dir))?;
    let mut found = Vec::new();
    for entry in rd {
        let entry = entry.map_err(Error::io("listing", images_dir))?;
        let yaml = entry.path().join("image.yaml");
        if yaml.is_file() {
            found.push((entry.file_name().to_string_lossy().into_owned(), yaml));
        }
    }
    found.sort();
    Ok(found)
}

fn check_replaceable(out_dir: &Path) -> Result<()> {
    let refuse = |problem: &str| Error::Output {
        path: out_dir.to_owned(),
        problem: problem.into(),
    };
    match fs::symlink_metadata(out_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspecting", out_dir)(e)),
        Ok(m) if !m.is_dir() => Err(refuse("exists and is not a directory")),
        Ok(_) => {
            let empty = fs::read_dir(out_dir)
                .map_err(Error::io("listing", out_dir))?
                .next()
                .is_none();
            if empty || out_dir.join("oci-layout").is_file() {
                Ok(())
            } else {
                Err(refuse(
                    "exists, is not empty and is not an OCI layout; refusing to replace it",
                ))
            }
        }
    }
}

fn staging_dir(out_dir: &Path) -> Result<PathBuf> {
    let name = out_dir.file_name().ok_or_else(|| Error::Output {
        path: out_dir.to_owned(),
        problem: "has no final path component".into(),
    })?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(Error::io("creating", &parent))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(Error::io("removing stale", &staging))?;
    }
    Ok(staging)
}

/// Writes the whole layout into `dir` (which must not exist yet).
fn write_layout(def: &ImageDef, base_dir: &Path, dir: &Path) -> Result<BuiltImage> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(Error::io("creating", &blobs))?;
    write_file(&dir.join("oci-layout"), OCI_LAYOUT_CONTENT)?;

    let mut layers = Vec::new();
    let mut history = Vec::new();
    for (i, layer_def) in def.layers.iter().enumerate() {
        let plan =
            layer::plan(layer_def, i).map_err(|(field, problem)| Error::DefinitionInvalid {
                path: "<in-memory definition>".into(),
                field,
                problem,
            })?;
        let tmp = blobs.join(format!(".layer-{i}.tmp"));
        let w = layer::write(&plan, i, base_dir, &tmp)?;
        let dest = blobs.join(&w.digest_hex);
        fs::rename(&tmp, &dest).map_err(Error::io("naming layer blob", &dest))?;
        history.push(
            HistoryBuilder::default()
                .created(EPOCH)
                .created_by(format!("outpost-ocibuild layer {i}: {}", w.summary))
                .build()
                .map_err(spec("history"))?,
        );
        layers.push(LayerInfo {
            digest: sha256_digest(&w.digest_hex),
            diff_id: sha256_digest(&w.diff_id_hex),
            size: w.size,
            media_type: MediaType::ImageLayerGzip,
        });
    }

    let config = image_config(def, &layers, history)?;
    let config_bytes = canonical_json("image config", &blobs, &config)?;
    let config_desc = write_blob(&blobs, MediaType::ImageConfig, &config_bytes)?;

    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor::new(l.media_type.clone(), l.size, l.digest.clone()))
        .collect();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(layer_descs)
        .build()
        .map_err(spec("manifest"))?;
    let manifest_bytes = canonical_json("manifest", &blobs, &manifest)?;
    let manifest_desc = write_blob(&blobs, MediaType::ImageManifest, &manifest_bytes)?;

    let reference = def.reference();
    let platform = PlatformBuilder::default()
        .architecture(host_arch())
        .os(Os::Linux)
        .build()
        .map_err(spec("platform"))?;
    let index_entry = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(manifest_desc.digest().clone())
        .size(manifest_desc.size())
        .platform(platform)
        .annotations(HashMap::from([(
            ANNOTATION_REF_NAME.to_owned(),
            reference.clone(),
        )]))
        .build()
        .map_err(spec("index descriptor"))?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![index_entry])
        .build()
        .map_err(spec("index"))?;
    let index_path = dir.join("index.json");
    write_file(
        &index_path,
        &canonical_json("index.json", &index_path, &index)?,
    )?;

    Ok(BuiltImage {
        layout_dir: dir.to_owned(),
        manifest_digest: manifest_desc.digest().clone(),
        config_digest: config_desc.digest().clone(),
        layers,
        reference,
    })
}

fn image_config(
    def: &ImageDef,
    layers: &[LayerInfo],
    history: Vec<oci_spec::image::History>,
) -> Result<ImageConfiguration> {
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec("rootfs"))?;
    ImageConfigurationBuilder::default()
        .created(EPOCH)
        .architecture(host_arch())
        .os(Os::Linux)
        .config(runtime_config(&def.config)?)
        .rootfs(rootfs)
        .history(history)
        .build()
        .map_err(spec("image config"))
}

fn runtime_config(c: &ConfigDef) -> Result<oci_spec::image::Config> {
    let mut b = ConfigBuilder::default();
    if let Some(v) = &c.entrypoint {
        b = b.entrypoint(v.clone());
    }
    if let Some(v) = &c.cmd {
        b = b.cmd(v.clone());
    }
    if !c.env.is_empty() {
        b = b.env(c.env.clone());
    }
    if let Some(v) = &c.working_dir {
        b = b.working_dir(v.clone());
    }
    if let Some(v) = &c.user {
        b = b.user(v.clone());
    }
    if !c.labels.is_empty() {
        b = b.labels(c.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    if let Some(v) = &c.stop_signal {
        b = b.stop_signal(v.clone());
    }
    b.build().map_err(spec("config"))
}

/// Writes `bytes` as `blobs/sha256/<hex>` and returns its descriptor.
fn write_blob(blobs: &Path, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
    let hex = sha256_hex(bytes);
    write_file(&blobs.join(&hex), bytes)?;
    Ok(Descriptor::new(
        media_type,
        bytes.len() as u64,
        sha256_digest(&hex),
    ))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(Error::io("writing", path))
}

fn spec(what: &'static str) -> impl FnOnce(oci_spec::OciSpecError) -> Error {
    move |source| Error::Spec { what, source }
}

/// The host architecture under its Go (`GOARCH`) name, as OCI requires.
pub(crate) fn host_arch() -> Arch {
    let goarch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips64" => "mips64",
        other => other,
    };
    Arch::from(goarch)
}
