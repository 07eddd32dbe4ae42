//! Base OS update boot test (`make image-test`, or after building the
//! binaries `cargo test [--release] -p outpost-mkimage --test update -- --include-ignored`).
//! `#[ignore]`d otherwise: it needs the workspace binaries and QEMU.
//!
//! The host serves two images over HTTP to the guest (10.0.2.101:9000,
//! through QEMU's guestfwd): the image's own root squashfs and a corrupt
//! one whose digest is right. /config/device.yaml names them in `base_os`.
//! 1. On A, generation 1 names the good image: the agent streams it into
//!    IMGB, verifies it, marks B updating and reboots (QEMU exits).
//! 2. B boots, the test window sees hello RUNNING: COMMITTED (B active, A unused).
//! 3. On B, generation 2 names the corrupt image: into IMGA, reboot.
//! 4. A does not mount: the initramfs marks it failed and boots B; the
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
fn update_commits_a_good_image_and_rolls_back_a_bad_one() -> Result<()> {
    let (out, mut opts) = build_image("update-test", DEVICE_YAML)?;
    let good = out.join("rootfs.squashfs");
    let bad = out.join("corrupt.squashfs");
    let mut bytes = std::fs::read(&good)?;
    for b in bytes.iter_mut().skip(4096).step_by(7) {
        *b ^= 0x5a;
    }
    bytes[..4].copy_from_slice(b"XXXX"); // not even a squashfs superblock
    std::fs::write(&bad, &bytes)?;
    let (good_sha, bad_sha) = (sha256(&good)?, sha256(&bad)?);
    let port = serve(vec![
        ("/good".into(), good.clone()),
        ("/bad".into(), bad.clone()),
    ])?;
    opts.forwards = vec![GuestForward {
        guest_ip: SERVER.0.into(),
        guest_port: SERVER.1,
        host_port: port,
    }];
    let d = opts.disk.clone();
    set_config(&d, &config_with(1, "2", "/good", &good_sha))?;

    // 1-2: A → B, committed.
    let t0 = Instant::now();
    let to_reboot = boot_until_update_reboot(1, &opts, &out)?;
    expect(1, &d, SlotState::ACTIVE, SlotState::UPDATING)?;
    let mut vm = Vm::boot("update boot 2", &opts, &out.join("update-console-2.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let v = vm.ok(
        "i=0; until outpost version 2>/dev/null | grep -q 'base OS update.*COMMITTED'; do i=$((i+1)); [ $i -gt 1500 ] && exit 1; sleep 0.2; done; outpost version",
        Duration::from_secs(330),
    )
    .context("boot 2: the update was not committed")?;
    let committed = t0.elapsed();
    println!("boot 2:\n{v}");
    if !v.contains("base OS slot IMGB") {
        bail!("boot 2: not on IMGB:\n{v}");
    }
    vm.ok(
        "outpost list | grep -q '^hello .*RUNNING'",
        Duration::from_secs(30),
    )?;
    vm.poweroff(Duration::from_secs(90))?;
    expect(2, &d, SlotState::UNUSED, SlotState::ACTIVE)?;
    println!(
        "update A→B: config with the new image → reboot {:.1} s, → COMMITTED {:.1} s (two TCG/KVM boots included)",
        to_reboot.as_secs_f64(),
        committed.as_secs_f64()
    );

    // 3-4: a corrupt image (right digest) into A: back on B, rolled back.
    set_config(&d, &config_with(2, "3", "/bad", &bad_sha))?;
    let t1 = Instant::now();
    boot_until_update_reboot(3, &opts, &out)?;
    expect(3, &d, SlotState::UPDATING, SlotState::ACTIVE)?;
    let b4 = boot(4, &opts, &out, true)?;
    let back = t1.elapsed();
    if b4.slot != "IMGB"
        || !b4.version.contains("ROLLED BACK")
        || !b4.version.contains("IMGA did not boot")
    {
        bail!("boot 4: expected a roll-back to IMGB:\n{}", b4.version);
    }
    expect(4, &d, SlotState::UNUSED, SlotState::ACTIVE)?;
    println!(
        "bad image: config → back on IMGB with hello RUNNING and ROLLED BACK reported {:.1} s \
         (two boots included; the boot back on IMGB: {:.1} s from QEMU start)",
        back.as_secs_f64(),
        b4.host_secs
    );
    Ok(())
}
