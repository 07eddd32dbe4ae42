//! Building layouts: reproducibility, structure, reading back, archives.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{gunzip, images_dir, read, sha256, tree};
use outpost_ocibuild::{build, build_all, write_archive, Error, ImageDef, OciLayout};
use serde_json::Value;

const SMALL: &str = r#"
name: outpost/test
tag: v1
layers:
  - files:
      - { from: payload.bin, to: /opt/payload }
      - { from: script.sh, to: /opt/script.sh }
    dirs: [/tmp, /etc, /proc]
    links: [{ path: /bin/sh, target: busybox }]
    write:
      - { path: /etc/passwd, content: "root:x:0:0:root:/root:/bin/sh\n" }
  - random: [{ path: /blob, size: 100000, seed: 7 }]
    write:
      - { path: /etc/motd, content: "hi\n", mode: 0o600 }
config:
  entrypoint: [/bin/sh, -c]
  cmd: ["echo hi"]
  env: [PATH=/bin, A=1]
  working_dir: /
  user: "0:0"
  labels: { b.label: "2", a.label: "1", org.lfedge.eve.vnc_password: secret }
  stop_signal: SIGTERM
"#;

/// A temp dir holding `image.yaml` (SMALL) and the two host files it copies.
fn small_def_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("image.yaml"), SMALL).unwrap();
    fs::write(d.path().join("payload.bin"), b"payload bytes").unwrap();
    let script = d.path().join("script.sh");
    fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn build_small(out: &Path) -> outpost_ocibuild::BuiltImage {
    let src = small_def_dir();
    let def = ImageDef::load(src.path().join("image.yaml")).unwrap();
    build(&def, src.path(), out).unwrap()
}

#[test]
fn same_definition_builds_identical_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let first = build_small(&a);
    // A second checkout in another place, with another umask on the host
    // file, must not change anything.
    let src = small_def_dir();
    fs::set_permissions(
        src.path().join("payload.bin"),
        fs::Permissions::from_mode(0o664),
    )
    .unwrap();
    let def = ImageDef::load(src.path().join("image.yaml")).unwrap();
    let second = build(&def, src.path(), &b).unwrap();

    assert_eq!(first.manifest_digest, second.manifest_digest);
    assert_eq!(first.config_digest, second.config_digest);
    assert_eq!(first.layers, second.layers);
    assert_eq!(tree(&a), tree(&b));
}

#[test]
fn layout_is_structurally_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let built = build_small(&dir);

    assert_eq!(
        read(&dir.join("oci-layout")),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    // Every blob is stored under its own sha256.
    for e in fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(
            sha256(&read(&p)),
            p.file_name().unwrap().to_str().unwrap(),
            "{}",
            p.display()
        );
    }
    let blob = |digest: &str| dir.join("blobs/sha256").join(&digest[7..]);
    let json = |p: &Path| -> Value { serde_json::from_slice(&read(p)).unwrap() };

    let index = json(&dir.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let md = &manifests[0];
    assert_eq!(
        md["annotations"]["org.opencontainers.image.ref.name"],
        "outpost/test:v1"
    );
    assert_eq!(md["platform"]["os"], "linux");
    assert_eq!(md["platform"]["architecture"], "amd64");
    assert_eq!(md["digest"], built.manifest_digest.to_string());
    let mpath = blob(md["digest"].as_str().unwrap());
    assert_eq!(md["size"], read(&mpath).len() as u64);

    let manifest = json(&mpath);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["config"]["digest"],
        built.config_digest.to_string()
    );
    let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Entrypoint"][0], "/bin/sh");
    assert_eq!(config["config"]["Labels"]["a.label"], "1");
    assert_eq!(config["config"]["StopSignal"], "SIGTERM");
    assert_eq!(config["config"]["User"], "0:0");
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(config["history"].as_array().unwrap().len(), 2);

    let layers = manifest["layers"].as_array().unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(diff_ids.len(), 2);
    for (i, (layer, diff_id)) in layers.iter().zip(diff_ids).enumerate() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let p = blob(layer["digest"].as_str().unwrap());
        assert_eq!(layer["size"], read(&p).len() as u64);
        let tar = gunzip(&p);
        assert_eq!(*diff_id, format!("sha256:{}", sha256(&tar)));
        assert_eq!(built.layers[i].diff_id.to_string(), *diff_id);
        assert_eq!(built.layers[i].digest.to_string(), layer["digest"]);
    }
    // The same checks through the library's own verifier.
    OciLayout::open(&dir).unwrap().verify().unwrap();
}

#[test]
fn layer_tar_entries_are_sorted_and_normalised() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let built = build_small(&dir);
    let layer0 = dir
        .join("blobs/sha256")
        .join(built.layers[0].digest.digest());
    let tar = gunzip(&layer0);
    let mut ar = tar::Archive::new(&tar[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.uid().unwrap(), 0);
        assert_eq!(h.gid().unwrap(), 0);
        let path = e.path().unwrap().to_string_lossy().into_owned();
        seen.push((path, h.mode().unwrap(), h.entry_type()));
    }
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/sh",
            "etc",
            "etc/passwd",
            "opt",
            "opt/payload",
            "opt/script.sh",
            "proc",
            "tmp"
        ]
    );
    let mode = |n: &str| seen.iter().find(|s| s.0 == n).unwrap().1;
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("proc"), 0o755);
    assert_eq!(mode("opt"), 0o755, "implicit parent");
    assert_eq!(mode("opt/payload"), 0o644, "host file not executable");
    assert_eq!(mode("opt/script.sh"), 0o755, "host file executable");
    assert_eq!(mode("etc/passwd"), 0o644);
    // gzip header: no mtime, no name, OS 255.
    let gz = read(&layer0);
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
    assert_eq!(gz[9], 255);
}

#[test]
fn open_reads_back_what_build_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let built = build_small(&dir);
    let layout = OciLayout::open(&dir).unwrap();

    assert_eq!(layout.index_bytes(), read(&dir.join("index.json")));
    assert_eq!(layout.index().manifests().len(), 1);
    assert_eq!(layout.ref_names(), ["outpost/test:v1"]);

    let m = layout.manifest().unwrap();
    assert_eq!(m.descriptor.digest(), &built.manifest_digest);
    assert_eq!(m.bytes, read(&layout.blob_path(&built.manifest_digest)));
    assert_eq!(m, layout.manifest_by_ref(&built.reference).unwrap());

    let c = layout.config().unwrap();
    assert_eq!(c.descriptor.digest(), &built.config_digest);
    assert_eq!(c.bytes, read(&layout.blob_path(&built.config_digest)));
    let labels = c.value.config().as_ref().unwrap().labels().clone().unwrap();
    assert_eq!(labels["org.lfedge.eve.vnc_password"], "secret");

    for (desc, info) in m.value.layers().iter().zip(&built.layers) {
        assert_eq!(desc.digest(), &info.digest);
        assert_eq!(desc.size(), info.size);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut layout.blob_reader(desc.digest()).unwrap(), &mut bytes)
            .unwrap();
        assert_eq!(sha256(&bytes), info.digest.digest());
        assert_eq!(layout.read_blob(desc).unwrap(), bytes);
    }

    let e = layout.manifest_by_ref("nope:latest").unwrap_err();
    assert!(e.to_string().contains("outpost/test:v1"), "{e}");
}

#[test]
fn tampered_blobs_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let built = build_small(&dir);

    // A layer whose bytes changed.
    let layer = dir
        .join("blobs/sha256")
        .join(built.layers[1].digest.digest());
    let mut bytes = read(&layer);
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&layer, &bytes).unwrap();
    let e = OciLayout::open(&dir).unwrap().verify().unwrap_err();
    assert!(
        matches!(e, Error::Blob { ref digest, .. } if *digest == built.layers[1].digest.to_string()),
        "{e}"
    );

    // A config that no longer matches its digest.
    let config = dir.join("blobs/sha256").join(built.config_digest.digest());
    fs::write(&config, b"{}").unwrap();
    let e = OciLayout::open(&dir).unwrap().config().unwrap_err();
    assert!(e.to_string().contains(built.config_digest.digest()), "{e}");
}

#[test]
fn archive_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let built = build_small(&dir);
    let (a1, a2) = (tmp.path().join("a1.tar"), tmp.path().join("a2.tar"));
    write_archive(&dir, &a1).unwrap();
    write_archive(&dir, &a2).unwrap();
    assert_eq!(read(&a1), read(&a2), "archives are reproducible");

    let names: Vec<String> = tar::Archive::new(&read(&a1)[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names[..2], ["blobs", "blobs/sha256"]);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"index.json".to_owned()));
    assert!(names.contains(&"oci-layout".to_owned()));

    let opened = OciLayout::open_archive(&a1).unwrap();
    let temp_dir = opened.dir().to_owned();
    assert_eq!(opened.index_bytes(), read(&dir.join("index.json")));
    assert_eq!(
        opened.manifest().unwrap().descriptor.digest(),
        &built.manifest_digest
    );
    opened.verify().unwrap();
    assert_eq!(tree(&temp_dir), tree(&dir));
    drop(opened);
    assert!(!temp_dir.exists(), "temporary unpack dir removed on drop");

    let dest = tmp.path().join("unpacked");
    let kept = OciLayout::open_archive_in(&a1, &dest).unwrap();
    kept.verify().unwrap();
    drop(kept);
    assert!(dest.join("index.json").is_file());
    // Unpacking again into the now non-empty directory is refused.
    assert!(OciLayout::open_archive_in(&a1, &dest).is_err());
}

#[test]
fn archives_with_links_or_escaping_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mk = |name: &str, f: &dyn Fn(&mut tar::Builder<fs::File>)| {
        let p = tmp.path().join(name);
        let mut b = tar::Builder::new(fs::File::create(&p).unwrap());
        f(&mut b);
        b.finish().unwrap();
        p
    };
    let link = mk("link.tar", &|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "index.json", "/etc/passwd").unwrap();
    });
    let e = OciLayout::open_archive(&link).unwrap_err();
    assert!(e.to_string().contains("only regular files"), "{e}");

    let escape = mk("escape.tar", &|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        // Bypass the builder's own path checks to write a hostile name.
        h.as_gnu_mut().unwrap().name[..10].copy_from_slice(b"../evil\0\0\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
    });
    let e = OciLayout::open_archive(&escape).unwrap_err();
    assert!(e.to_string().contains("inside the layout"), "{e}");
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn rebuilding_replaces_a_layout_but_not_other_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    build_small(&dir);
    let stale = dir.join("blobs/sha256/stale");
    fs::write(&stale, b"old").unwrap();
    build_small(&dir);
    assert!(!stale.exists(), "old layout replaced whole");
    OciLayout::open(&dir).unwrap().verify().unwrap();

    let precious = tmp.path().join("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("data"), b"keep").unwrap();
    let src = small_def_dir();
    let def = ImageDef::load(src.path().join("image.yaml")).unwrap();
    let e = build(&def, src.path(), &precious).unwrap_err();
    assert!(matches!(e, Error::Output { .. }), "{e}");
    assert_eq!(read(&precious.join("data")), b"keep");
}

#[test]
fn missing_host_file_is_reported_with_its_path() {
    let src = small_def_dir();
    fs::remove_file(src.path().join("payload.bin")).unwrap();
    let def = ImageDef::load(src.path().join("image.yaml")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("layout");
    let e = build(&def, src.path(), &out).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("payload.bin") && text.contains("layer 0"),
        "{text}"
    );
    assert!(!out.exists(), "no partial layout left behind");
    let leftovers: Vec<_> = fs::read_dir(tmp.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "staging dir cleaned up");
}

#[test]
fn every_image_under_images_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_all(&images_dir(), tmp.path()).unwrap();
    let names: Vec<&str> = built.iter().map(|b| b.reference.as_str()).collect();
    for want in [
        "crash:latest",
        "hello:latest",
        "sh:latest",
        "stubborn:latest",
        "vnc-labelled:latest",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for b in &built {
        let layout = OciLayout::open(&b.layout_dir).unwrap();
        layout.verify().unwrap();
        let config = layout.config().unwrap().value;
        let rc = config.config().as_ref().unwrap();
        assert_eq!(
            rc.stop_signal().as_deref(),
            Some("SIGTERM"),
            "{}",
            b.reference
        );
        assert!(rc.cmd().is_some(), "{}", b.reference);

        let root = tmp.path().join("rootfs").join(&b.reference);
        common::unpack_rootfs(&layout, &root);
        for d in ["proc", "sys", "dev", "tmp", "etc"] {
            assert!(root.join(d).is_dir(), "{}: /{d}", b.reference);
        }
        let passwd = String::from_utf8(read(&root.join("etc/passwd"))).unwrap();
        assert!(passwd.starts_with("root:x:0:0:"), "{}", b.reference);
        let group = String::from_utf8(read(&root.join("etc/group"))).unwrap();
        assert!(group.starts_with("root:x:0:"), "{}", b.reference);
        assert!(root.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(root.join("bin/sh")).unwrap(),
            Path::new("busybox")
        );
    }
    let vnc = built
        .iter()
        .find(|b| b.reference == "vnc-labelled:latest")
        .unwrap();
    let config = OciLayout::open(&vnc.layout_dir).unwrap().config().unwrap();
    let labels = config
        .value
        .config()
        .as_ref()
        .unwrap()
        .labels()
        .clone()
        .unwrap();
    assert_eq!(labels["org.lfedge.eve.vnc_password"], "image-secret");

    // The busybox base layer is shared by every image.
    let base: Vec<_> = built.iter().map(|b| &b.layers[0].digest).collect();
    assert!(base.windows(2).all(|w| w[0] == w[1]), "{base:?}");
}
