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

mod vm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_baseos::SlotState;
use outpost_mkimage::{build, disk, BuildOptions, DiskSizes, QemuOptions};
use vm::Vm;

const DEVICE_YAML: &str = r#"# Written by the slot test: the demo app, from the OCI layout in the image.
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
fn bin_dir() -> Result<PathBuf> {
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
struct Booted {
    slot: String,
    version: String,
    host_secs: f64,
}

/// Boots the disk, waits for the agent, reads the slot, powers off.
fn boot(n: u32, opts: &QemuOptions, out: &Path, app_running: bool) -> Result<Booted> {
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

fn expect(n: u32, disk_path: &Path, a: SlotState, b: SlotState) -> Result<()> {
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

#[test]
#[ignore = "needs the workspace binaries and QEMU: make image-test"]
fn slot_selection_spends_tries_and_falls_back_to_a() -> Result<()> {
    let bins = bin_dir()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = bins.parent().context("target dir")?.join("slot-test");
    std::fs::create_dir_all(&out)?;
    let config = tempfile::tempdir()?;
    std::fs::write(config.path().join("device.yaml"), DEVICE_YAML)?;
    let report = build(&BuildOptions {
        definition: workspace.join("linuxkit/outpost.yml"),
        out: out.clone(),
        config_dir: Some(config.path().to_owned()),
        release_dir: bins.clone(),
        sizes: DiskSizes::default(),
    })?;
    println!("{report}");
    let opts = QemuOptions::for_image(&out);
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
    Ok(())
}
