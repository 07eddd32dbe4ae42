//! Independent tools accept what we build: `skopeo` (containers/image) reads
//! and copies the layout and the archive, `umoci` unpacks it. Each test
//! prints why and passes when its tool is not installed
//! (`apt-get install -y skopeo umoci`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use outpost_ocibuild::{build, write_archive, BuiltImage, ImageDef};
use serde_json::Value;

fn find_tool(name: &str) -> PathBuf {
    ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (scripts/install-deps.sh installs it)"))
}

fn run(tool: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn build_hello(dir: &Path) -> BuiltImage {
    let src = common::images_dir().join("hello");
    let def = ImageDef::load(src.join("image.yaml")).unwrap();
    build(&def, &src, &dir.join("hello")).unwrap()
}

#[test]
fn skopeo_reads_and_copies_the_layout_and_archive() {
    let skopeo = find_tool("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let built = build_hello(tmp.path());
    let src = format!("oci:{}:{}", built.layout_dir.display(), built.reference);

    let info: Value = serde_json::from_slice(&run(&skopeo, &["inspect", &src])).unwrap();
    assert_eq!(info["Digest"], built.manifest_digest.to_string());
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    let layers: Vec<String> = built.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(info["Layers"], serde_json::json!(layers));

    // --raw returns the manifest bytes exactly as stored.
    let raw = run(&skopeo, &["inspect", "--raw", &src]);
    let stored = std::fs::read(
        built
            .layout_dir
            .join("blobs/sha256")
            .join(built.manifest_digest.digest()),
    )
    .unwrap();
    assert_eq!(raw, stored);

    // A copy reads every blob and checks every digest on the way.
    let copy = tmp.path().join("copy");
    let dst = format!("oci:{}:copied", copy.display());
    run(&skopeo, &["copy", "--quiet", &src, &dst]);
    let copied: Value = serde_json::from_slice(&run(&skopeo, &["inspect", &dst])).unwrap();
    assert_eq!(copied["Digest"], built.manifest_digest.to_string());

    let archive = tmp.path().join("hello.oci.tar");
    write_archive(&built.layout_dir, &archive).unwrap();
    let arch = format!("oci-archive:{}", archive.display());
    let info: Value = serde_json::from_slice(&run(&skopeo, &["inspect", &arch])).unwrap();
    assert_eq!(info["Digest"], built.manifest_digest.to_string());
}

#[test]
fn umoci_unpacks_the_layout() {
    let umoci = find_tool("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let built = build_hello(tmp.path());
    let image = format!("{}:{}", built.layout_dir.display(), built.reference);
    let bundle = tmp.path().join("bundle");
    let bundle_s = bundle.to_str().unwrap();
    run(
        &umoci,
        &["unpack", "--rootless", "--image", &image, bundle_s],
    );

    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(rootfs.join("app/hello.sh").is_file());
    let spec: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        spec["process"]["args"],
        serde_json::json!(["/bin/sh", "/app/hello.sh"])
    );
}
