//! An old-layout device under a temp root, and a way to compare trees.

#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};

use outpost_runtime::Layout;

pub const APP1: &str = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10";
pub const APP2: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
pub const SHA: &str = "3f2e1d0c";

pub struct Device {
    pub dir: tempfile::TempDir,
    pub layout: Layout,
}

impl Device {
    /// Old layout: two container dirs (one with a purge suffix), a stray
    /// file, the old containerd root, and a checkpoint naming APP1 only.
    pub fn old() -> Device {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let prepared = layout.persist().join("runx/pods/prepared");
        for (name, data) in [
            (format!("{SHA}-{APP1}"), "one"),
            (format!("{SHA}-{APP2}#2"), "two"),
        ] {
            let d = prepared.join(&name);
            std::fs::create_dir_all(d.join("rootfs")).unwrap();
            std::fs::create_dir_all(d.join("extra/deep")).unwrap();
            std::fs::write(d.join("image-config.json"), format!("{{\"n\":\"{data}\"}}")).unwrap();
            std::fs::write(d.join("extra/deep/file"), data).unwrap();
            std::os::unix::fs::symlink("deep/file", d.join("extra/link")).unwrap();
        }
        std::fs::write(prepared.join("README"), "not a dir").unwrap();
        std::fs::create_dir_all(prepared.join("not-an-app")).unwrap();
        let ctd = layout
            .persist()
            .join("containerd/io.containerd.content.v1.content");
        std::fs::create_dir_all(&ctd).unwrap();
        std::fs::write(ctd.join("blob"), "blob").unwrap();
        std::fs::create_dir_all(layout.status_dir()).unwrap();
        let store = outpost_store::Store::open(&store_path(&layout)).unwrap();
        let cfg = format!(
            "generation: 3\napps:\n  - uuid: {APP1}\n    version: \"1\"\n    display_name: one\n    app_num: 1\n    image: hello:latest\n    resources: {{ memory_kib: 32768, vcpus: 1 }}\n"
        );
        store.save_applied_config(cfg.as_bytes(), 3, 1).unwrap();
        Device { dir, layout }
    }

    pub fn old_dir(&self, name: &str) -> PathBuf {
        self.layout.persist().join("runx/pods/prepared").join(name)
    }

    pub fn volume(&self, uuid: &str, gen: u64) -> PathBuf {
        self.layout
            .volumes()
            .join(format!("{uuid}#{gen}.container"))
    }
}

pub fn store_path(layout: &Layout) -> PathBuf {
    layout.status_dir().join("outpost.redb")
}

/// Every path under `<root>/persist` except the store, with its kind and
/// content (file bytes, link target), sorted.
pub fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(root, &root.join("persist"), &mut out);
    out.retain(|(p, _)| !p.starts_with("persist/status"));
    out.sort();
    out
}

fn walk(root: &Path, p: &Path, out: &mut Vec<(String, String)>) {
    let rel = p.strip_prefix(root).unwrap().display().to_string();
    let m = std::fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        out.push((rel, "dir".into()));
        for e in std::fs::read_dir(p).unwrap() {
            walk(root, &e.unwrap().path(), out);
        }
    } else if m.file_type().is_symlink() {
        out.push((
            rel,
            format!("-> {}", std::fs::read_link(p).unwrap().display()),
        ));
    } else {
        out.push((
            rel,
            String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned(),
        ));
    }
}
