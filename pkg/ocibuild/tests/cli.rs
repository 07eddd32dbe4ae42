//! The `outpost-ocibuild` binary: build, build-all, verify.

mod common;

use std::process::Command;

fn ocibuild(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_outpost-ocibuild"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "outpost-ocibuild {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn build_all_then_verify_each_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let images = common::images_dir();
    let out_dir = tmp.path().join("out");
    let out = ocibuild(&[
        "build-all",
        images.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--archives",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 5, "{out}");
    for line in lines {
        // "<reference> <manifest digest> <dir>"
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "{line}");
        assert!(f[1].starts_with("sha256:") && f[1].len() == 71, "{line}");
        let verified = ocibuild(&["verify", f[2]]);
        assert!(
            verified.starts_with(&format!("ok {} {}", f[0], f[1])),
            "{verified}"
        );
        let archive = format!("{}.oci.tar", f[2]);
        let verified = ocibuild(&["verify", &archive]);
        assert!(verified.contains(f[1]), "{verified}");
    }
}

#[test]
fn build_archive_only_matches_layout_build() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = common::images_dir().join("hello");
    let hello = hello.to_str().unwrap();
    let archive = tmp.path().join("hello.tar");
    let a = ocibuild(&["build", hello, "--archive", archive.to_str().unwrap()]);
    let dir = tmp.path().join("hello");
    let b = ocibuild(&["build", hello, "-o", dir.to_str().unwrap()]);
    let digest = |s: &str| s.split(' ').nth(1).unwrap().to_owned();
    assert_eq!(digest(&a), digest(&b));
    assert!(archive.is_file());
    assert!(dir.join("index.json").is_file());
}

#[test]
fn build_without_output_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_outpost-ocibuild"))
        .args([
            "build",
            common::images_dir().join("hello").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-o DIR"));
}
