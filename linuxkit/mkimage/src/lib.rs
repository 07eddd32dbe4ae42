//! Builds the Outpost device image from a linuxkit-style YAML
//! (`linuxkit/outpost.yml`), without linuxkit and without a registry: from
//! installed Debian packages, workspace release binaries and OCI images
//! built by outpost-ocibuild.
//!
//! Output (one directory): `vmlinuz` and `initrd.img` for direct boot,
//! `cmdline`, `rootfs.squashfs`, and `disk.img` — GPT with `IMGA` (the
//! squashfs root), `IMGB` (the other root slot, empty), `CONFIG` (ext4, read-only `/config`) and `P3` (ext4,
//! `/persist`). The initramfs finds the partitions by GPT name, mounts them
//! and switches to busybox init in the squashfs; see `linuxkit/README.md`
//! for the format, how references resolve and the boot sequence.
//!
//! ```no_run
//! # fn main() -> Result<(), outpost_mkimage::Error> {
//! use outpost_mkimage::{build, BuildOptions, DiskSizes};
//! let report = build(&BuildOptions {
//!     definition: "linuxkit/outpost.yml".into(),
//!     out: "target/image".into(),
//!     config_dir: Some("linuxkit/config".into()),
//!     release_dir: "target/release".into(),
//!     sizes: DiskSizes::default(),
//! })?;
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! # Current limitations
//!
//! * x86-64 only (the ELF reader, library directories and QEMU command).
//! * No bootloader: the disk boots through QEMU's `-kernel`/`-initrd`; the
//!   initramfs knows only virtio disks.
//! * Only the root is A/B (`IMGA`/`IMGB`); no fsck of `/persist` before
//!   mounting (the ext4 journal is replayed by the kernel).
//! * `onboot`/`services` images come only from `oci:` definitions; their
//!   processes run as root (no `uid`/`gid`), and whiteouts are not handled.

pub mod accel;
pub mod build;
pub mod bundle;
pub mod cpio;
pub mod deb;
pub mod def;
pub mod disk;
pub mod elf;
pub mod error;
pub mod initramfs;
pub mod kmod;
pub mod qemu;
pub mod rootfs;
pub mod source;
pub mod tree;

pub use accel::{Accel, AccelChoice};
pub use build::{build, BuildOptions, BuildReport};
pub use def::Definition;
pub use disk::DiskSizes;
pub use error::{Error, Result};
pub use qemu::{GuestForward, QemuOptions};
