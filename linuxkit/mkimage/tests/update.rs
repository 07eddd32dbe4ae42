//! Base OS update boot test with a hand-made config (`make image-test`, or
//! after building the binaries `cargo test [--release] -p outpost-mkimage --test update -- --include-ignored`).
//! `#[ignore]`d otherwise: it needs the workspace binaries and QEMU. The
//! happy path through the controller (`base-os publish`) is tests/publish.rs.
//!
//! The host serves a corrupt image whose digest is right over plain HTTP to
//! the guest (10.0.2.101:9000, through QEMU's guestfwd); /config/device.yaml
//! names it in `base_os`.
//! 1. On A the agent streams it into IMGB, verifies it, marks B updating
//!    and reboots (QEMU exits).
//! 2. B does not mount: the initramfs marks it failed and boots A; the
//!    agent reports ROLLED BACK with the reason, hello RUNNING, and does not
//!    try that image again.

mod slotboot;
mod vm;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_baseos::SlotState;
use outpost_mkimage::GuestForward;
use slotboot::{
    boot, build_image, config_with, expect, serve, set_config, sha256, DEVICE_YAML, SERVER,
};
use vm::Vm;

/// Boots, waits for the agent, then for the reboot the update makes
/// (QEMU exits under -no-reboot); returns QEMU start → exit.
fn boot_until_update_reboot(
    n: u32,
    opts: &outpost_mkimage::QemuOptions,
    out: &Path,
) -> Result<Duration> {
    let mut vm = Vm::boot(
        &format!("update boot {n}"),
        opts,
        &out.join(format!("update-console-{n}.log")),
    )?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let started = vm.started;
    vm.wait_exit(Duration::from_secs(600))
        .with_context(|| format!("boot {n}: the agent did not install the update and reboot"))?;
    Ok(started.elapsed())
}

#[test]
#[ignore = "needs the workspace binaries and QEMU: make image-test"]
fn update_rolls_back_a_bad_image() -> Result<()> {
    let (out, mut opts) = build_image("update-test", DEVICE_YAML)?;
    let good = out.join("rootfs.squashfs");
    let bad = out.join("corrupt.squashfs");
    let mut bytes = std::fs::read(&good)?;
    for b in bytes.iter_mut().skip(4096).step_by(7) {
        *b ^= 0x5a;
    }
    bytes[..4].copy_from_slice(b"XXXX"); // not even a squashfs superblock
    std::fs::write(&bad, &bytes)?;
    let bad_sha = sha256(&bad)?;
    let port = serve(vec![("/bad".into(), bad.clone())])?;
    opts.forwards = vec![GuestForward {
        guest_ip: SERVER.0.into(),
        guest_port: SERVER.1,
        host_port: port,
    }];
    let d = opts.disk.clone();
    set_config(&d, &config_with(1, "2", "/bad", &bad_sha))?;

    // 1-2: a corrupt image (right digest) into B: back on A, rolled back.
    let t1 = Instant::now();
    boot_until_update_reboot(1, &opts, &out)?;
    expect(1, &d, SlotState::ACTIVE, SlotState::UPDATING)?;
    let b2 = boot(2, &opts, &out, true)?;
    let back = t1.elapsed();
    if b2.slot != "IMGA"
        || !b2.version.contains("ROLLED BACK")
        || !b2.version.contains("IMGB did not boot")
    {
        bail!("boot 2: expected a roll-back to IMGA:\n{}", b2.version);
    }
    expect(2, &d, SlotState::ACTIVE, SlotState::UNUSED)?;
    println!(
        "bad image: QEMU start with the config naming it → back on IMGA with hello RUNNING and ROLLED BACK reported {:.1} s \
         (two boots included; the boot back on IMGA: {:.1} s from QEMU start)",
        back.as_secs_f64(),
        b2.host_secs
    );
    Ok(())
}
