//! The accelerator choice against the real QEMU and this host's kernel
//! (`/boot/vmlinuz-*`, no image needed): whatever kind of host this is —
//! KVM works, KVM aborts, or a KVM guest never runs — the chosen
//! accelerator boots a kernel to console output, and a boot under KVM that
//! stays silent falls back to TCG for the rest of the process.

#[allow(dead_code)]
mod vm;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use outpost_mkimage::accel::{self, AccelChoice};
use outpost_mkimage::{Accel, QemuOptions};
use vm::Vm;

/// The host's kernel with an empty initrd and a blank 1 MiB disk: enough
/// for the kernel banner on the console.
fn host_kernel_options(dir: &Path) -> Result<QemuOptions> {
    let kernel = accel::probe_kernel(&dir.join("vmlinuz"))
        .context("no /boot/vmlinuz-* on this host to boot (install a Debian kernel package)")?;
    let mut o = QemuOptions::for_image(dir);
    std::fs::write(&o.initrd, b"")?;
    std::fs::write(&o.disk, vec![0u8; 1 << 20])?;
    o.kernel = kernel;
    o.cmdline = "console=ttyS0 panic=-1".into();
    o.memory_mib = 256;
    o.cpus = 1;
    Ok(o)
}

const BANNER: &str = "Linux version";

#[test]
fn the_chosen_accelerator_boots_a_kernel_to_its_console() -> Result<()> {
    let d = tempfile::tempdir()?;
    let opts = host_kernel_options(d.path())?;
    let t0 = Instant::now();
    let choice = accel::detect(&opts.kernel)?;
    println!(
        "detected in {:.1} s: {} ({})",
        t0.elapsed().as_secs_f64(),
        choice.accel,
        choice.reason
    );
    // The choice alone, without the boot-time fallback.
    let plain = AccelChoice {
        fallback: false,
        ..choice
    };
    let mut vm = Vm::boot_with("probe-check", &opts, &d.path().join("console.log"), &plain)?;
    vm.wait_for_text(BANNER, Duration::from_secs(60))
        .with_context(|| format!("under the chosen accelerator {}", plain.accel))?;
    Ok(())
}

#[test]
fn a_kvm_boot_without_console_output_falls_back_to_tcg() -> Result<()> {
    let d = tempfile::tempdir()?;
    let opts = host_kernel_options(d.path())?;
    let kvm = AccelChoice {
        accel: Accel::Kvm,
        fallback: true,
        reason: "as the probe would choose on a host where KVM works".into(),
    };
    let log = d.path().join("console.log");
    let mut vm = Vm::boot_with("fallback-check", &opts, &log, &kvm)?;
    vm.wait_for_text(BANNER, Duration::from_secs(60))?;
    match vm.accel {
        // KVM works on this host: nothing to fall back from.
        Accel::Kvm => println!("KVM printed on this host; no fallback needed"),
        Accel::Tcg => {
            assert!(
                log.with_extension("log.kvm").is_file(),
                "the silent KVM boot's transcript is kept"
            );
            // Remembered: later boots go straight to TCG, without a probe.
            let later = accel::process_choice(Path::new("/nonexistent/vmlinuz"))?;
            assert_eq!(later.accel, Accel::Tcg, "{}", later.reason);
            assert!(later.reason.contains("TCG from now on"), "{}", later.reason);
        }
    }
    Ok(())
}
