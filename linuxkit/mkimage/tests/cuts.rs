//! Power cuts during a base OS update (`make image-test` runs 3 trials;
//! `scripts/bench-slot-cuts.sh` runs 20): the guest is killed (QEMU SIGKILL,
//! so whatever the guest had not written is lost) at a random moment of an
//! update A → B (download into IMGB, the GPT write that marks it updating,
//! the reboot), then booted again; the device must come up on a good slot
//! with the agent answering. If the update carries on and reboots the
//! guest, the next boot is checked (at most 3 boots per trial).
//! `OUTPOST_CUT_TRIALS` sets the number of trials.

mod slotboot;
mod vm;

use std::hash::{BuildHasher, Hasher};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_mkimage::{disk, GuestForward};
use slotboot::{build_image, config_with, serve, set_config, sha256, DEVICE_YAML, SERVER};
use vm::Vm;

/// A random fraction in [0, 1) (the std hasher's random keys; no crate needed).
fn random() -> f64 {
    let h = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn copy_sparse(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .status()?;
    if !st.success() {
        bail!("cp {} {} failed", from.display(), to.display());
    }
    Ok(())
}

#[test]
#[ignore = "needs the workspace binaries and QEMU: make image-test"]
fn a_power_cut_anywhere_in_an_update_leaves_a_bootable_slot() -> Result<()> {
    let trials: u32 = std::env::var("OUTPOST_CUT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (out, mut opts) = build_image("cut-test", DEVICE_YAML)?;
    let good = out.join("rootfs.squashfs");
    let port = serve(vec![("/good".into(), good.clone())])?;
    opts.forwards = vec![GuestForward {
        guest_ip: SERVER.0.into(),
        guest_port: SERVER.1,
        host_port: port,
    }];
    let d = opts.disk.clone();
    set_config(&d, &config_with(1, "2", "/good", &sha256(&good)?))?;
    let pristine = out.join("pristine.img");
    copy_sparse(&d, &pristine)?;

    // Calibrate: an uncut update, QEMU start → the update's reboot.
    let mut vm = Vm::boot("cut calibration", &opts, &out.join("cut-console-0.log"))?;
    vm.wait_for_shell(Duration::from_secs(300))?;
    let full = vm.started.elapsed() + vm.wait_exit(Duration::from_secs(600))?;
    println!(
        "uncut update: QEMU start → reboot into IMGB {:.1} s",
        full.as_secs_f64()
    );

    let mut booted = Vec::new();
    for trial in 1..=trials {
        copy_sparse(&pristine, &d)?;
        let cut = Duration::from_secs_f64(full.as_secs_f64() * (0.2 + 0.85 * random()));
        let vm = Vm::boot(
            &format!("cut {trial}"),
            &opts,
            &out.join(format!("cut-console-{trial}.log")),
        )?;
        let until = vm.started + cut;
        // The cut itself: wait for the chosen moment, then SIGKILL (Drop).
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(vm);
        let (a, b) = disk::slots(&d)?;
        let mut slot = None;
        for attempt in 1..=3 {
            let mut vm = Vm::boot(
                &format!("cut {trial} check {attempt}"),
                &opts,
                &out.join(format!("cut-console-{trial}-{attempt}.log")),
            )?;
            let up = vm.wait_for_shell(Duration::from_secs(300)).and_then(|_| {
                vm.ok(
                    "i=0; until outpost version >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; sleep 0.1; done; cat /run/outpost/slot",
                    Duration::from_secs(150),
                )
            });
            match up {
                Ok(s) => {
                    slot = Some(s.trim().to_owned());
                    break;
                }
                // The update went on and rebooted the guest: check the next boot.
                Err(e)
                    if format!("{e:#}").contains("closed")
                        || format!("{e:#}").contains("exited") =>
                {
                    println!("cut {trial}: boot {attempt} ended ({e:#}); booting again");
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "cut {trial} at {:.1} s (A {a}, B {b}): no good boot",
                            cut.as_secs_f64()
                        )
                    })
                }
            }
        }
        let slot = slot.with_context(|| format!("cut {trial}: three boots ended early"))?;
        if slot != "IMGA" && slot != "IMGB" {
            bail!("cut {trial}: booted {slot:?}");
        }
        println!(
            "cut {trial}/{trials} at {:.1} s (slots then: A {:#x}, B {:#x}) → booted {slot}, agent answering",
            cut.as_secs_f64(),
            a.cgpt(),
            b.cgpt()
        );
        booted.push(slot);
    }
    let on_b = booted.iter().filter(|s| *s == "IMGB").count();
    println!(
        "{trials} power cuts: every boot came up on a good slot ({} on IMGA, {on_b} on IMGB)",
        trials as usize - on_b
    );
    Ok(())
}
