//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use outpost_ocibuild::OciLayout;
use sha2::{Digest, Sha256};

/// The workspace's `images/` directory.
pub fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images")
}

/// Hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads a file completely.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Decompresses a gzip file.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Applies the layers of the layout's first image to `dest` in order, like a
/// snapshotter would (no whiteouts: this crate never writes them).
pub fn unpack_rootfs(layout: &OciLayout, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    let manifest = layout.manifest().unwrap();
    for layer in manifest.value.layers() {
        let reader = GzDecoder::new(layout.blob_reader(layer.digest()).unwrap());
        let mut ar = tar::Archive::new(reader);
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        ar.unpack(dest).unwrap();
    }
}

/// Names of every file below `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.push((rel + "/", Vec::new()));
                walk(root, &p, out);
            } else {
                out.push((rel, read(&p)));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
