//! What the slot and update boot tests share: building the image from the
//! binaries of the test's own profile, one boot that reads the slot and
//! the agent's view of it, and checking the slot states on the host.

#![allow(
    dead_code,
    reason = "each of slots.rs, update.rs and cuts.rs uses a part"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use outpost_baseos::SlotState;
use outpost_mkimage::{build, disk, BuildOptions, DiskSizes, QemuOptions};
use sha2::{Digest, Sha256};

use crate::vm::Vm;

/// The demo app alone, from the OCI layout in the image.
pub const DEVICE_YAML: &str = r#"# Written by the slot test: the demo app, from the OCI layout in the image.
generation: 1
apps:
  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10
    version: "1"
    display_name: hello
    app_num: 1
    image: hello:latest
    resources: { memory_kib: 32768, vcpus: 1 }
    stop_timeout: 5s
"#;

/// The directory of the workspace binaries: the profile dir of this test binary.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("target profile dir")?
        .to_owned();
    for bin in [
        "outpostd",
        "outpost",
        "memlogd",
        "logread",
        "logwrite",
        "outpost-slot",
    ] {
        if !dir.join(bin).is_file() {
            bail!(
                "{} not found: run `make image-test` (or cargo build [--release] -p outpost-agent \
                 -p memlogd -p outpost-baseos in the profile this test runs in)",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

/// What one boot showed.
pub struct Booted {
    pub slot: String,
    pub version: String,
    pub host_secs: f64,
}

/// Boots the disk, waits for the agent, reads the slot, powers off.
pub fn boot(n: u32, opts: &QemuOptions, out: &Path, app_running: bool) -> Result<Booted> {
    let mut vm = Vm::boot(
        &format!("slot boot {n}"),
        opts,
        &out.join(format!("slots-console-{n}.log")),
    )?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let t = Duration::from_secs(30);
    let slot = vm.ok("cat /run/outpost/slot", t)?.trim().to_owned();
    vm.ok(
        "i=0; until outpost version --json >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; sleep 0.1; done",
        Duration::from_secs(150),
    )
    .context("outpostd did not answer")?;
    let version = vm.ok("outpost version", t)?;
    let json: serde_json::Value = serde_json::from_str(&vm.ok("outpost version --json", t)?)?;
    if json["base_os"]["slot"] != slot.as_str() {
        bail!(
            "boot {n}: /run/outpost/slot says {slot}, the agent says {}",
            json["base_os"]
        );
    }
    if app_running {
        vm.ok(
            "i=0; until outpost list 2>/dev/null | grep -q '^hello .*RUNNING'; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.3; done",
            Duration::from_secs(200),
        )
        .with_context(|| format!("boot {n}: hello did not reach RUNNING on {slot}"))?;
    }
    let host_secs = vm.started.elapsed().as_secs_f64();
    println!(
        "slot boot {n} ({}): {slot}, agent up and checked {host_secs:.1} s after QEMU start:\n{version}",
        vm.accel
    );
    vm.poweroff(Duration::from_secs(90))?;
    Ok(Booted {
        slot,
        version,
        host_secs,
    })
}

pub fn expect(n: u32, disk_path: &Path, a: SlotState, b: SlotState) -> Result<()> {
    let got = disk::slots(disk_path)?;
    if got != (a, b) {
        bail!(
            "after boot {n}: slots are A {} / B {}, expected A {a} / B {b}",
            got.0,
            got.1
        );
    }
    Ok(())
}

/// Builds the image into `<target>/<name>` with `device_yaml` in /config.
pub fn build_image(name: &str, device_yaml: &str) -> Result<(PathBuf, QemuOptions)> {
    let bins = bin_dir()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = bins.parent().context("target dir")?.join(name);
    std::fs::create_dir_all(&out)?;
    let config = tempfile::tempdir()?;
    std::fs::write(config.path().join("device.yaml"), device_yaml)?;
    let report = build(&BuildOptions {
        definition: workspace.join("linuxkit/outpost.yml"),
        out: out.clone(),
        config_dir: Some(config.path().to_owned()),
        release_dir: bins,
        sizes: DiskSizes::default(),
    })?;
    println!("{report}");
    let opts = QemuOptions::for_image(&out);
    Ok((out, opts))
}

/// Where the guest reaches the host's image server (guestfwd).
pub const SERVER: (&str, u16) = ("10.0.2.101", 9000);

/// Serves `files` (URL path → file) over HTTP/1.0 on 127.0.0.1; returns the port.
pub fn serve(files: Vec<(String, PathBuf)>) -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let files = files.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(&s);
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                        break;
                    }
                }
                let mut w = &s;
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, f)) => {
                        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                        let _ = write!(
                            w,
                            "HTTP/1.0 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                        );
                        if let Ok(mut f) = std::fs::File::open(f) {
                            let _ = std::io::copy(&mut f, &mut w);
                        }
                    }
                    None => {
                        let _ = write!(w, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                    }
                }
            });
        }
    });
    Ok(port)
}

pub fn sha256(p: &Path) -> Result<String> {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(p)?, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

pub fn config_with(generation: u32, version: &str, path: &str, sha: &str) -> String {
    let apps = DEVICE_YAML
        .split_once("apps:")
        .map(|(_, a)| a)
        .unwrap_or("");
    format!(
        "generation: {generation}\nbase_os:\n  version: \"{version}\"\n  url: http://{}:{}{path}\n  sha256: {sha}\n  test_window: 300s\n  fallback: 120s\napps:{apps}",
        SERVER.0, SERVER.1
    )
}

pub fn set_config(d: &Path, yaml: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("device.yaml"), yaml)?;
    disk::replace_config(d, Some(dir.path()))?;
    Ok(())
}
