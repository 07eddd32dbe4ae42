//! The initramfs: busybox, the storage modules, `outpost-slot` (A/B slot
//! choice, `outpost_baseos`) and an `/init` that mounts the chosen slot's
//! squashfs root and the persist/config partitions found by GPT name, then
//! `switch_root`s. About 1.5 MB compressed, so QEMU's `-initrd` and the
//! kernel's unpacking stay fast under TCG; everything else lives in the
//! squashfs, which is read lazily.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::deb::KernelFiles;
use crate::error::{Error, Result};
use crate::kmod::{ModuleIndex, Resolved};
use crate::rootfs::{add_host, add_modules, busybox_applets};
use crate::tree::{Content, Tree};

/// The initramfs's `/init`.
pub const INIT: &str = include_str!("initramfs/init.sh");

/// Modules the initramfs loads to reach its partitions under QEMU
/// (virtio disk, squashfs, ext4 and the crc32c ext4's checksums need).
pub const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "squashfs",
    "ext4",
    "crc32c_generic",
];

/// GPT name of the read-only root partition, slot A (EVE's).
pub const ROOT_LABEL: &str = "IMGA";
/// GPT name of root slot B (EVE's).
pub const ROOT_B_LABEL: &str = "IMGB";
/// GPT name of the configuration partition (EVE's).
pub const CONFIG_LABEL: &str = "CONFIG";
/// GPT name of the persistent partition (EVE's).
pub const PERSIST_LABEL: &str = "P3";

/// The assembled initramfs.
#[derive(Debug, Clone)]
pub struct Initramfs {
    /// Its files.
    pub tree: Tree,
    /// The modules it loads.
    pub modules: Resolved,
}

/// The slot tool's name in the release directory and in the initramfs's `/bin`.
pub const SLOT_TOOL: &str = "outpost-slot";

/// Builds the initramfs tree from the host's busybox-static, `k`'s modules
/// and the `outpost-slot` binary at `slot_tool` (with its libraries).
pub fn assemble(
    busybox: &Path,
    slot_tool: &Path,
    k: &KernelFiles,
    idx: &ModuleIndex,
) -> Result<Initramfs> {
    let mut t = Tree::new(false);
    let o = "initramfs";
    for d in ["/proc", "/sys", "/dev", "/newroot", "/etc", "/tmp"] {
        t.dir(Path::new(d), 0o755, o)?;
    }
    // The kernel opens /dev/console for /init before devtmpfs is mounted.
    t.char_dev(Path::new("/dev/console"), 5, 1, 0o600, o)?;
    t.file(
        Path::new("/init"),
        Content::Bytes(INIT.as_bytes().to_vec()),
        0o755,
        o,
    )?;
    t.file(
        Path::new("/bin/busybox"),
        Content::Host(busybox.to_owned()),
        0o755,
        o,
    )?;
    for applet in busybox_applets(busybox)? {
        if let Some(name) = applet.file_name() {
            let p = PathBuf::from("/bin").join(name);
            if !t.contains(&p) {
                t.symlink(&p, "busybox", o)?;
            }
        }
    }
    if !slot_tool.is_file() {
        return Err(Error::Io {
            context: "missing workspace binary (build it first: cargo build --release -p outpost-baseos, or make image):",
            path: slot_tool.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    add_host(&mut t, slot_tool, &Path::new("/bin").join(SLOT_TOOL), o)?;
    let wanted: Vec<String> = MODULES.iter().map(|m| m.to_string()).collect();
    let modules = idx.resolve(&wanted)?;
    add_modules(&mut t, k, idx, &modules, "/etc/modules.load", o)?;
    Ok(Initramfs { tree: t, modules })
}

/// Writes the gzip-compressed newc archive to `out`.
pub fn write(tree: &Tree, out: &Path) -> Result<()> {
    let f = std::fs::File::create(out).map_err(Error::io("creating", out))?;
    let mut gz = GzEncoder::new(std::io::BufWriter::new(f), Compression::new(6));
    crate::cpio::write(tree, &mut gz)?;
    gz.finish()
        .and_then(|mut w| w.flush())
        .map_err(Error::io("writing", out))
}
