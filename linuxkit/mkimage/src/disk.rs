//! The disk image: GPT (sgdisk) with the squashfs root in slot `IMGA`, an
//! empty slot `IMGB` of the same size beside it (A/B updates), an ext4
//! `CONFIG` partition populated from a directory and an ext4 `P3`
//! (`/persist`), all written into one sparse raw file without loop devices
//! (`mkfs.ext4 -E offset=… -d DIR`). The slots' states are EVE's GPT
//! attribute bits (`outpost_baseos::attrs`): A active (`0x102`), B unused.
//! Partition numbers: 1 IMGA, 2 CONFIG, 3 P3, 4 IMGB (on the disk IMGB
//! lies right after IMGA; the numbers of the older layout are kept).
//! Also reads the GPT back, so a test or an operator can replace the
//! CONFIG partition of an existing disk.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};
use crate::initramfs::{CONFIG_LABEL, PERSIST_LABEL, ROOT_B_LABEL, ROOT_LABEL};
use outpost_baseos::{Gpt, SlotState};

const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// Sizes of the partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSizes {
    /// Room in each root slot beyond the squashfs (for a larger update).
    pub root_slack: u64,
    /// CONFIG partition size.
    pub config: u64,
    /// P3 (/persist) size.
    pub persist: u64,
}

impl Default for DiskSizes {
    fn default() -> Self {
        DiskSizes {
            root_slack: 16 * MIB,
            config: 16 * MIB,
            persist: 2048 * MIB,
        }
    }
}

/// One GPT partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based number.
    pub number: u32,
    /// GPT name.
    pub name: String,
    /// Byte offset in the disk.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

fn run(tool: &str, args: &[&str], what: &str) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| Error::Tool {
            tool: tool.into(),
            what: what.into(),
            message: format!("{e} (is it installed? run scripts/install-deps.sh)"),
        })?;
    if !out.status.success() {
        return Err(Error::Tool {
            tool: tool.into(),
            what: what.into(),
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `mksquashfs dir out`, zstd, all files root-owned, timestamps 0.
pub fn squashfs(dir: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    let (d, o) = (dir.to_string_lossy(), out.to_string_lossy());
    run(
        "mksquashfs",
        &[
            &d,
            &o,
            "-comp",
            "zstd",
            "-Xcompression-level",
            "15",
            "-all-root",
            "-noappend",
            "-no-progress",
            "-quiet",
            "-mkfs-time",
            "0",
            "-all-time",
            "0",
            "-no-xattrs",
        ],
        "building the root squashfs",
    )?;
    Ok(())
}

/// An ext4 file system of `size` bytes at `offset` of `disk`, holding `dir`'s content.
pub fn ext4_at(disk: &Path, offset: u64, size: u64, label: &str, dir: Option<&Path>) -> Result<()> {
    let ext = format!("offset={offset},nodiscard,root_owner=0:0");
    let size_k = format!("{}k", size / 1024);
    let disk_s = disk.to_string_lossy();
    let dir_s = dir.map(|d| d.to_string_lossy().into_owned());
    let mut args = vec!["-q", "-F", "-t", "ext4", "-L", label, "-m", "0", "-E", &ext];
    if let Some(d) = &dir_s {
        args.extend(["-d", d.as_str()]);
    }
    args.extend([&*disk_s, &*size_k]);
    run("mke2fs", &args, &format!("making the {label} file system"))?;
    Ok(())
}

/// Builds the whole disk at `out` and returns its partitions.
pub fn build(
    out: &Path,
    squashfs: &Path,
    config_dir: Option<&Path>,
    sizes: DiskSizes,
) -> Result<Vec<Partition>> {
    let sq_len = std::fs::metadata(squashfs)
        .map_err(Error::io("reading", squashfs))?
        .len();
    let root = (sq_len + sizes.root_slack).div_ceil(MIB) * MIB;
    // (number, name, size) in disk order.
    let layout = [
        (1, ROOT_LABEL, root),
        (4, ROOT_B_LABEL, root),
        (2, CONFIG_LABEL, sizes.config.div_ceil(MIB) * MIB),
        (3, PERSIST_LABEL, sizes.persist.div_ceil(MIB) * MIB),
    ];
    let total = MIB + layout.iter().map(|(_, _, s)| s).sum::<u64>() + MIB;
    let _ = std::fs::remove_file(out);
    let f = File::create(out).map_err(Error::io("creating", out))?;
    f.set_len(total).map_err(Error::io("sizing", out))?;
    drop(f);
    let mut args: Vec<String> = vec!["--clear".into()];
    let mut parts = Vec::new();
    let mut at = MIB;
    for (n, name, size) in layout {
        let (first, last) = (at / SECTOR, (at + size) / SECTOR - 1);
        args.push(format!("--new={n}:{first}:{last}"));
        args.push(format!("--change-name={n}:{name}"));
        args.push(format!("--typecode={n}:8300"));
        parts.push(Partition {
            number: n,
            name: name.into(),
            offset: at,
            size,
        });
        at += size;
    }
    parts.sort_by_key(|p| p.number);
    args.push(out.to_string_lossy().into_owned());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    run("sgdisk", &argv, "writing the partition table")?;
    set_slots(out, SlotState::ACTIVE, SlotState::UNUSED)?;

    copy_into(squashfs, out, parts[0].offset)?;
    ext4_at(out, parts[1].offset, parts[1].size, "config", config_dir)?;
    ext4_at(out, parts[2].offset, parts[2].size, "persist", None)?;
    // Check what we wrote reads back as we meant it.
    let read = partitions(out)?;
    if read != parts {
        return Err(Error::Disk {
            path: out.to_owned(),
            message: format!("partition table reads back as {read:?}, expected {parts:?}"),
        });
    }
    Ok(parts)
}

/// Writes the A/B slot states of `disk` (both GPT copies).
pub fn set_slots(disk: &Path, a: SlotState, b: SlotState) -> Result<()> {
    let bad = |e: outpost_baseos::Error| Error::Disk {
        path: disk.to_owned(),
        message: format!("setting the slot states: {e}"),
    };
    let mut g = Gpt::open(disk).map_err(bad)?;
    for (label, state) in [(ROOT_LABEL, a), (ROOT_B_LABEL, b)] {
        let e = g.find(label).map_err(bad)?;
        g.set_attributes(e.index, state.apply(e.attributes));
    }
    g.write().map_err(bad)
}

/// The A/B slot states of `disk`: (IMGA, IMGB).
pub fn slots(disk: &Path) -> Result<(SlotState, SlotState)> {
    let bad = |e: outpost_baseos::Error| Error::Disk {
        path: disk.to_owned(),
        message: format!("reading the slot states: {e}"),
    };
    let g = Gpt::open(disk).map_err(bad)?;
    let s = outpost_baseos::read_slots(&g).map_err(bad)?;
    Ok((s[0].state, s[1].state))
}

/// Copies `src` (a root squashfs) to the start of partition `label` of `disk`.
pub fn write_slot(disk: &Path, label: &str, src: &Path) -> Result<()> {
    let p = find(disk, label)?;
    let len = std::fs::metadata(src)
        .map_err(Error::io("reading", src))?
        .len();
    if len > p.size {
        return Err(Error::Disk {
            path: disk.to_owned(),
            message: format!(
                "{} ({len} bytes) does not fit in {label} ({} bytes)",
                src.display(),
                p.size
            ),
        });
    }
    copy_into(src, disk, p.offset)
}

fn copy_into(src: &Path, disk: &Path, offset: u64) -> Result<()> {
    let mut r = File::open(src).map_err(Error::io("opening", src))?;
    let mut w = OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(Error::io("opening", disk))?;
    w.seek(SeekFrom::Start(offset))
        .map_err(Error::io("seeking in", disk))?;
    std::io::copy(&mut r, &mut w).map_err(Error::io("copying the root into", disk))?;
    Ok(())
}

/// Reads the GPT of `disk` (primary header at LBA 1).
pub fn partitions(disk: &Path) -> Result<Vec<Partition>> {
    let bad = |m: String| Error::Disk {
        path: disk.to_owned(),
        message: m,
    };
    let mut f = File::open(disk).map_err(Error::io("opening", disk))?;
    let mut hdr = [0u8; 92];
    f.seek(SeekFrom::Start(SECTOR))
        .map_err(Error::io("reading", disk))?;
    f.read_exact(&mut hdr).map_err(Error::io("reading", disk))?;
    if &hdr[..8] != b"EFI PART" {
        return Err(bad("no GPT header at LBA 1".into()));
    }
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let (entries_lba, count, size) = (
        le64(&hdr[72..80]),
        le32(&hdr[80..84]),
        le32(&hdr[84..88]) as usize,
    );
    if !(128..=4096).contains(&size) || count > 1024 {
        return Err(bad(format!(
            "implausible GPT entry table ({count} × {size})"
        )));
    }
    let mut table = vec![0u8; count as usize * size];
    f.seek(SeekFrom::Start(entries_lba * SECTOR))
        .map_err(Error::io("reading", disk))?;
    f.read_exact(&mut table)
        .map_err(Error::io("reading", disk))?;
    let mut out = Vec::new();
    for (i, e) in table.chunks(size).enumerate() {
        if e[..16].iter().all(|b| *b == 0) {
            continue;
        }
        let (first, last) = (le64(&e[32..40]), le64(&e[40..48]));
        let name: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|c| *c != 0)
            .collect();
        out.push(Partition {
            number: i as u32 + 1,
            name: String::from_utf16_lossy(&name),
            offset: first * SECTOR,
            size: (last + 1 - first) * SECTOR,
        });
    }
    Ok(out)
}

/// The partition named `name`.
pub fn find(disk: &Path, name: &str) -> Result<Partition> {
    partitions(disk)?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| Error::Disk {
            path: disk.to_owned(),
            message: format!("no partition named {name}"),
        })
}

/// Re-creates the CONFIG partition of `disk` from `dir` (an empty one when
/// `None`): how a device gets a new `/config` bundle, e.g. the output of
/// `outpost-controller init`.
pub fn replace_config(disk: &Path, dir: Option<&Path>) -> Result<()> {
    let p = find(disk, CONFIG_LABEL)?;
    ext4_at(disk, p.offset, p.size, "config", dir)
}

/// Sizes of a sparse file: (apparent, allocated) bytes.
pub fn file_sizes(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(Error::io("reading", path))?;
    Ok((m.len(), m.blocks() * 512))
}

/// Writes `text` to `path` (a small helper for the build outputs).
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let mut f = File::create(path).map_err(Error::io("creating", path))?;
    f.write_all(text.as_bytes())
        .map_err(Error::io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have(tool: &str) -> bool {
        Command::new(tool).arg("-V").output().is_ok()
    }

    /// `debugfs -R 'cat /<name>'` on the ext4 at `offset` of `disk`.
    fn ext4_cat(disk: &Path, offset: u64, name: &str) -> String {
        let dev = format!("{}?offset={offset}", disk.display());
        let out = Command::new("debugfs")
            .args(["-R", &format!("cat /{name}"), &dev])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn builds_a_gpt_disk_and_replaces_its_config() {
        assert!(
            have("mksquashfs") && have("sgdisk") && have("mke2fs"),
            "squashfs-tools, gdisk or e2fsprogs not installed (scripts/install-deps.sh installs them)"
        );
        let d = tempfile::tempdir().unwrap();
        let (root, cfg) = (d.path().join("root"), d.path().join("cfg"));
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::write(root.join("sbin/init"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("device.yaml"), "generation: 1\n").unwrap();
        let sq = d.path().join("root.squashfs");
        squashfs(&root, &sq).unwrap();
        let disk = d.path().join("disk.img");
        let sizes = DiskSizes {
            root_slack: MIB,
            config: 8 * MIB,
            persist: 16 * MIB,
        };
        let parts = build(&disk, &sq, Some(&cfg), sizes).unwrap();
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [ROOT_LABEL, CONFIG_LABEL, PERSIST_LABEL, ROOT_B_LABEL]
        );
        assert_eq!(parts[0].offset, MIB);
        assert_eq!(parts[2].size, 16 * MIB);
        // B is A's size, right after it; A is active and B unused (EVE's bits).
        assert_eq!(parts[3].size, parts[0].size);
        assert_eq!(parts[3].offset, parts[0].offset + parts[0].size);
        assert_eq!(
            slots(&disk).unwrap(),
            (SlotState::ACTIVE, SlotState::UNUSED)
        );
        let sg = Command::new("sgdisk")
            .arg("-v")
            .arg(&disk)
            .output()
            .unwrap();
        let sg = String::from_utf8_lossy(&sg.stdout);
        assert!(sg.contains("No problems found"), "{sg}");
        // The squashfs is where the GPT says.
        let mut magic = [0u8; 4];
        let mut f = File::open(&disk).unwrap();
        f.seek(SeekFrom::Start(parts[0].offset)).unwrap();
        f.read_exact(&mut magic).unwrap();
        assert_eq!(&magic, b"hsqs");
        let config = find(&disk, CONFIG_LABEL).unwrap();
        assert_eq!(
            ext4_cat(&disk, config.offset, "device.yaml"),
            "generation: 1\n"
        );

        std::fs::write(cfg.join("device.yaml"), "generation: 2\n").unwrap();
        replace_config(&disk, Some(&cfg)).unwrap();
        assert_eq!(
            ext4_cat(&disk, config.offset, "device.yaml"),
            "generation: 2\n"
        );
        replace_config(&disk, None).unwrap();
        assert_eq!(ext4_cat(&disk, config.offset, "device.yaml"), "");
        // The neighbours are untouched.
        assert_eq!(partitions(&disk).unwrap(), parts);
        f.seek(SeekFrom::Start(parts[0].offset)).unwrap();
        f.read_exact(&mut magic).unwrap();
        assert_eq!(&magic, b"hsqs");
    }
}
