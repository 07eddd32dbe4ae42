//! A/B slot boot test (`make image-test`, or after building the binaries
//! `cargo test [--release] -p outpost-mkimage --test slots -- --include-ignored`).
//! `#[ignore]`d otherwise: it needs the workspace binaries and QEMU, and
//! fails (does not skip) when one is missing. Runs from the profile its own
//! binary was built in (release under `make image-test`).
//!
//! One image, four boots of the same disk, the slot states set and read on
//! the host between boots with `outpost_baseos` (as the agent will set them
//! for an update):
//! 1. fresh image: A active, B unused → boots IMGA, no try spent.
//! 2. B "updating" (0x13) but holding garbage → the initramfs picks B,
//!    its root does not mount, B is marked failed and A boots; the agent
//!    reports why (`outpost version`).
//! 3. B "updating" holding a good root → boots IMGB, one try spent (0x3,
//!    "in progress"); hello RUNNING from the checkpoint.
//! 4. B never committed → B is marked failed and A boots again.
//! 5. B "updating" again; once it is up, the agent is frozen (SIGSTOP):
//!    the i6300esb watchdog it fed resets the guest (QEMU exits under
//!    `-no-reboot`), and
//! 6. the next boot is on A, B marked failed: a hung boot costs one try.

mod slotboot;
mod vm;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_baseos::SlotState;
use outpost_mkimage::disk;
use slotboot::{boot, build_image, expect, DEVICE_YAML};
use vm::Vm;

#[test]
#[ignore = "needs the workspace binaries and QEMU: make image-test"]
fn slot_selection_spends_tries_and_falls_back_to_a() -> Result<()> {
    let (out, opts) = build_image("slot-test", DEVICE_YAML)?;
    let d = &opts.disk;
    let in_progress = SlotState {
        priority: 3,
        tries: 0,
        successful: false,
    };

    // 1. Fresh image.
    expect(0, d, SlotState::ACTIVE, SlotState::UNUSED)?;
    let b1 = boot(1, &opts, &out, true)?;
    if b1.slot != "IMGA" || !b1.version.contains("base OS slot IMGA") {
        bail!("boot 1: booted {} :\n{}", b1.slot, b1.version);
    }
    expect(1, d, SlotState::ACTIVE, SlotState::UNUSED)?;

    // 2. B marked updating but corrupt: one failed mount, back on A.
    let garbage = out.join("garbage.img");
    std::fs::write(
        &garbage,
        (0..(4u32 << 20))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )?;
    disk::write_slot(d, "IMGB", &garbage)?;
    disk::set_slots(d, SlotState::ACTIVE, SlotState::UPDATING)?;
    let t = Instant::now();
    let b2 = boot(2, &opts, &out, true)?;
    if b2.slot != "IMGA" || !b2.version.contains("(IMGB) does not mount") {
        bail!(
            "boot 2: expected IMGA after IMGB failed to mount, got {}:\n{}",
            b2.slot,
            b2.version
        );
    }
    println!(
        "corrupt IMGB → back on IMGA with hello RUNNING {:.1} s after QEMU start ({:.1} s with power-off)",
        b2.host_secs,
        t.elapsed().as_secs_f64()
    );
    expect(2, d, SlotState::ACTIVE, SlotState::UNUSED)?;

    // 3. B updating with a good root: it boots, spending its one try.
    disk::write_slot(d, "IMGB", &out.join("rootfs.squashfs"))?;
    disk::set_slots(d, SlotState::ACTIVE, SlotState::UPDATING)?;
    let b3 = boot(3, &opts, &out, true)?;
    if b3.slot != "IMGB" {
        bail!("boot 3: expected IMGB, got {}:\n{}", b3.slot, b3.version);
    }
    expect(3, d, SlotState::ACTIVE, in_progress)?;

    // 4. B was never committed: it is failed, A boots.
    let b4 = boot(4, &opts, &out, true)?;
    if b4.slot != "IMGA" || !b4.version.contains("IMGB: booted without being committed") {
        bail!(
            "boot 4: expected IMGA after the uncommitted IMGB, got {}:\n{}",
            b4.slot,
            b4.version
        );
    }
    expect(4, d, SlotState::ACTIVE, SlotState::UNUSED)?;

    // 5. A hung agent on B: the watchdog resets the guest.
    disk::set_slots(d, SlotState::ACTIVE, SlotState::UPDATING)?;
    let mut vm = Vm::boot("slot boot 5", &opts, &out.join("slots-console-5.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let t = Duration::from_secs(30);
    let slot = vm.ok("cat /run/outpost/slot", t)?;
    if slot.trim() != "IMGB" {
        bail!("boot 5: expected IMGB, got {slot}");
    }
    vm.ok(
        "i=0; until outpost version >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; sleep 0.1; done; [ -c /dev/watchdog ]",
        Duration::from_secs(150),
    )
    .context("boot 5: the agent did not answer, or there is no /dev/watchdog")?;
    vm.ok(
        "i=0; until /usr/bin/logread -source outpostd | grep -q 'feeding the watchdog'; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.2; done",
        Duration::from_secs(90),
    )
    .context("boot 5: the agent does not feed the watchdog")?;
    vm.ok("kill -STOP $(pidof outpostd)", t)?;
    let reset = vm.wait_exit(Duration::from_secs(180))?;
    println!(
        "boot 5: agent frozen on IMGB → watchdog reset {:.1} s later",
        reset.as_secs_f64()
    );
    expect(5, d, SlotState::ACTIVE, in_progress)?;
    let b6 = boot(6, &opts, &out, true)?;
    if b6.slot != "IMGA" || !b6.version.contains("IMGB: booted without being committed") {
        bail!(
            "boot 6: expected IMGA after the hung IMGB, got {}:\n{}",
            b6.slot,
            b6.version
        );
    }
    expect(6, d, SlotState::ACTIVE, SlotState::UNUSED)?;
    Ok(())
}
