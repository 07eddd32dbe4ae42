//! Base OS update through the reference controller (`make image-test`, or
//! after building the binaries `cargo test [--release] -p outpost-mkimage
//! --test publish -- --include-ignored`). `#[ignore]`d otherwise: it needs
//! the workspace binaries and QEMU.
//!
//! The host runs `outpost-controller serve`; /config holds its bundle, the
//! guest reaches it at 10.0.2.100:8443 (guestfwd).
//! 1. On A the device registers; `device set-config` gives it `hello`, then
//!    `base-os publish rootfs.squashfs --device` names the image's own
//!    squashfs: the agent fetches it from the controller with its device
//!    certificate into IMGB, verifies it, reboots (QEMU exits).
//! 2. B boots: COMMITTED, on the device and as reported to the controller.
//! 3. A second version (the same squashfs padded, so another digest) is
//!    published with a 60 s fallback: into IMGA, reboot. The controller is
//!    stopped before A boots.
//! 4. A boots, the controller stays unreachable: after the fallback time the
//!    agent rolls back and reboots (QEMU exits).
//! 5. The controller is back; B boots with hello RUNNING and reports
//!    ROLLED BACK, "controller was unreachable", to the controller.

mod ctl;
mod slotboot;
mod vm;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ctl::ControllerProcess;
use outpost_baseos::SlotState;
use outpost_mkimage::disk;
use slotboot::{bin_dir, build_image, expect, DEVICE_YAML};
use vm::Vm;

/// The fallback of the second publish (TCG-safe: the device boots and the
/// agent starts well within it, and it is what the test waits for).
const FALLBACK: &str = "60s";

/// Polls `device status NAME --json` until `ok` holds for its `base_os`.
fn wait_reported(
    ctl: &ControllerProcess,
    name: &str,
    timeout: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    loop {
        let s: serde_json::Value =
            serde_json::from_str(&ctl.admin(&["device", "status", name, "--json"])?)?;
        let b = s["info"]["info"]["base_os"].clone();
        if ok(&b) {
            return Ok(b);
        }
        if t0.elapsed() > timeout {
            bail!(
                "the controller never saw the expected base OS state within {timeout:?}; last: {b}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn publish(ctl: &ControllerProcess, file: &Path, version: &str, name: &str) -> Result<String> {
    let out = ctl.admin(&[
        "base-os",
        "publish",
        &file.to_string_lossy(),
        "--version",
        version,
        "--device",
        name,
        "--test-window",
        "300s",
        "--fallback",
        FALLBACK,
    ])?;
    println!("base-os publish {version}: {}", out.trim());
    Ok(out)
}

#[test]
#[ignore = "needs the workspace binaries and QEMU: make image-test"]
fn published_update_commits_and_an_unreachable_controller_rolls_back() -> Result<()> {
    let bins = bin_dir()?;
    let (out, mut opts) = build_image("publish-test", DEVICE_YAML)?;
    let mut ctl = ControllerProcess::start(
        &bins.join("outpost-controller"),
        &out.join("publish-controller"),
    )?;
    let config = tempfile::tempdir()?;
    std::fs::write(config.path().join("device.yaml"), DEVICE_YAML)?;
    for e in std::fs::read_dir(ctl.bundle())? {
        let e = e?;
        std::fs::copy(e.path(), config.path().join(e.file_name()))?;
    }
    let d = opts.disk.clone();
    disk::replace_config(&d, Some(config.path()))?;
    opts.forwards = vec![outpost_mkimage::GuestForward {
        guest_ip: ctl::GUEST_ADDR.0.into(),
        guest_port: ctl::GUEST_ADDR.1,
        host_port: ctl.port,
    }];
    let good = out.join("rootfs.squashfs");
    // Version 3: the same root, padded to another digest (squashfs ignores
    // what follows its last block).
    let padded = out.join("rootfs-padded.squashfs");
    let mut bytes = std::fs::read(&good)?;
    bytes.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&padded, &bytes)?;
    drop(bytes);

    // 1: register, set the config, publish version 2.
    let mut vm = Vm::boot("publish boot 1", &opts, &out.join("publish-console-1.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let name = ctl.wait_for_device(Duration::from_secs(240))?;
    let yaml = tempfile::NamedTempFile::new()?;
    std::fs::write(yaml.path(), DEVICE_YAML)?;
    ctl.admin(&[
        "device",
        "set-config",
        &name,
        &yaml.path().to_string_lossy(),
    ])?;
    let t_publish = Instant::now();
    let published = publish(&ctl, &good, "2", &name)?;
    // The builder's digest file names what the controller computed.
    let digest = std::fs::read_to_string(out.join("rootfs.squashfs.sha256"))?;
    let digest = digest.split_whitespace().next().unwrap_or("");
    if digest.len() != 64 || !published.contains(digest) {
        bail!("rootfs.squashfs.sha256 says {digest:?}; publish said {published}");
    }
    vm.wait_exit(Duration::from_secs(600))
        .context("boot 1: the agent did not fetch the published image and reboot")?;
    let to_reboot = t_publish.elapsed();
    expect(1, &d, SlotState::ACTIVE, SlotState::UPDATING)?;

    // 2: B commits.
    let mut vm = Vm::boot("publish boot 2", &opts, &out.join("publish-console-2.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let v = vm
        .ok(
            "i=0; until outpost version 2>/dev/null | grep -q 'base OS update.*COMMITTED'; do i=$((i+1)); [ $i -gt 1500 ] && exit 1; sleep 0.2; done; outpost version",
            Duration::from_secs(330),
        )
        .context("boot 2: the update was not committed")?;
    let committed = t_publish.elapsed();
    if !v.contains("base OS slot IMGB") {
        bail!("boot 2: not on IMGB:\n{v}");
    }
    vm.ok(
        "outpost list | grep -q '^hello .*RUNNING'",
        Duration::from_secs(30),
    )?;
    let b = wait_reported(&ctl, &name, Duration::from_secs(150), |b| {
        b["update"] == "COMMITTED" && b["slot"] == "IMGB"
    })?;
    let reported = t_publish.elapsed();
    println!("boot 2: the controller sees {b}");
    vm.poweroff(Duration::from_secs(90))?;
    expect(2, &d, SlotState::UNUSED, SlotState::ACTIVE)?;
    println!(
        "publish → reboot into B {:.1} s, → COMMITTED on the device {:.1} s, → COMMITTED at the controller {:.1} s (the boot of B included)",
        to_reboot.as_secs_f64(),
        committed.as_secs_f64(),
        reported.as_secs_f64()
    );

    // 3: version 3 into A; the controller goes away before A boots.
    let mut vm = Vm::boot("publish boot 3", &opts, &out.join("publish-console-3.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    publish(&ctl, &padded, "3", &name)?;
    vm.wait_exit(Duration::from_secs(600))
        .context("boot 3: the agent did not fetch version 3 and reboot")?;
    expect(3, &d, SlotState::UPDATING, SlotState::ACTIVE)?;
    ctl.stop();

    // 4: A under test, controller unreachable: rolled back after the fallback.
    let vm = Vm::boot("publish boot 4", &opts, &out.join("publish-console-4.log"))?;
    let t_boot4 = Instant::now();
    let on_a = vm
        .wait_exit(Duration::from_secs(420))
        .context("boot 4: the agent did not roll back with the controller unreachable")?;
    println!(
        "controller unreachable: QEMU start on IMGA → roll-back reboot {:.1} s (fallback {FALLBACK}, boot included)",
        on_a.as_secs_f64()
    );
    if on_a < Duration::from_secs(60) {
        bail!("boot 4: rolled back after {on_a:?}, before the {FALLBACK} fallback");
    }
    expect(4, &d, SlotState::UNUSED, SlotState::ACTIVE)?;

    // 5: the controller is back; B runs hello and reports the roll-back.
    ctl.restart()?;
    let mut vm = Vm::boot("publish boot 5", &opts, &out.join("publish-console-5.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    vm.ok(
        "i=0; until outpost list 2>/dev/null | grep -q '^hello .*RUNNING'; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.3; done",
        Duration::from_secs(200),
    )
    .context("boot 5: hello did not reach RUNNING on IMGB")?;
    let running = t_boot4.elapsed();
    let v = vm.ok("outpost version", Duration::from_secs(30))?;
    if !v.contains("base OS slot IMGB") || !v.contains("ROLLED BACK") {
        bail!("boot 5: expected IMGB and ROLLED BACK:\n{v}");
    }
    let b = wait_reported(&ctl, &name, Duration::from_secs(150), |b| {
        b["update"] == "ROLLED BACK" && b["slot"] == "IMGB"
    })?;
    let reason = b["reason"].as_str().unwrap_or("");
    if !reason.contains("controller was unreachable") || b["version"] != "3" {
        bail!("boot 5: the controller sees the wrong roll-back: {b}");
    }
    println!("boot 5: the controller sees {b}");
    vm.poweroff(Duration::from_secs(90))?;
    expect(5, &d, SlotState::UNUSED, SlotState::ACTIVE)?;
    println!(
        "unreachable controller: A's QEMU start → back on IMGB with hello RUNNING {:.1} s (two boots, the {FALLBACK} fallback included)",
        running.as_secs_f64()
    );
    Ok(())
}
