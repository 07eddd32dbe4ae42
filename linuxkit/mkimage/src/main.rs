//! `outpost-mkimage`: build the device image, inspect or change its disk,
//! boot it in QEMU.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use outpost_mkimage::{build, disk, BuildOptions, Definition, DiskSizes, QemuOptions};

/// Builds the Outpost device image from a linuxkit-style YAML.
#[derive(Debug, Parser)]
#[command(name = "outpost-mkimage", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build vmlinuz, initrd.img, rootfs.squashfs and disk.img into --out.
    Build {
        /// The definition.
        #[arg(default_value = "linuxkit/outpost.yml")]
        definition: PathBuf,
        /// Output directory.
        #[arg(long, short)]
        out: PathBuf,
        /// Directory whose files go into the CONFIG partition (/config).
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Cargo target directory holding release/<bin> for cargo: entries
        /// (default: $CARGO_TARGET_DIR, else ./target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Size of the /persist partition, MiB.
        #[arg(long, default_value_t = 2048)]
        persist_mib: u64,
    },
    /// Check a definition without building.
    Check {
        /// The definition.
        #[arg(default_value = "linuxkit/outpost.yml")]
        definition: PathBuf,
    },
    /// List the GPT partitions of a disk image.
    Partitions {
        /// The disk image.
        disk: PathBuf,
    },
    /// Replace the CONFIG partition of a disk image with the files of a
    /// directory (e.g. what `outpost-controller init` wrote), or empty it.
    SetConfig {
        /// The disk image.
        disk: PathBuf,
        /// The directory (omit for an empty /config).
        #[arg(long)]
        from: Option<PathBuf>,
    },
    /// Boot a built image in QEMU with the serial console on this terminal
    /// (Ctrl-A X quits; `poweroff` in the guest ends it). It boots the disk
    /// itself: what the apps write to /persist stays. KVM when a probe KVM
    /// guest prints on its console, else TCG; OUTPOST_QEMU_ACCEL=kvm|tcg overrides.
    Run {
        /// The build output directory.
        #[arg(long, short)]
        image: PathBuf,
    },
}

fn main() {
    // Every error names its object; the chain would repeat it.
    if let Err(e) = run(Args::parse().cmd) {
        eprintln!("outpost-mkimage: {e}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Build {
            definition,
            out,
            config_dir,
            target_dir,
            persist_mib,
        } => {
            let target = target_dir
                .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("target"));
            let report = build(&BuildOptions {
                definition,
                out,
                config_dir,
                release_dir: target.join("release"),
                sizes: DiskSizes {
                    persist: persist_mib << 20,
                    ..DiskSizes::default()
                },
            })?;
            println!("{report}");
        }
        Cmd::Check { definition } => {
            let l = Definition::load(&definition)?;
            println!(
                "{}: ok ({} init entries, {} onboot, {} services, {} files)",
                definition.display(),
                l.init.len(),
                l.def.onboot.len(),
                l.def.services.len(),
                l.def.files.len()
            );
        }
        Cmd::Partitions { disk: d } => {
            for p in disk::partitions(&d)? {
                println!(
                    "{} {:<8} offset {:>12} size {:>12}",
                    p.number, p.name, p.offset, p.size
                );
            }
        }
        Cmd::SetConfig { disk: d, from } => {
            disk::replace_config(&d, from.as_deref())?;
            println!("{}: CONFIG rewritten", d.display());
        }
        Cmd::Run { image } => {
            let mut q = QemuOptions::for_image(&image);
            q.interactive = true;
            // The same choice as the boot test; no fallback here (QEMU
            // replaces this process), so a silent KVM guest is seen at once.
            let accel = outpost_mkimage::accel::process_choice(&q.kernel)?;
            eprintln!(
                "outpost-mkimage: accelerator {} ({})",
                accel.accel, accel.reason
            );
            let err = q.command(accel.accel).exec();
            return Err(err).context("starting qemu-system-x86_64");
        }
    }
    Ok(())
}
