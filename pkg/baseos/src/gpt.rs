//! Reads a GPT and rewrites its partition attributes crash-safely: both
//! header copies and both entry arrays, with their CRCs. The backup copy
//! (end of the disk) is written and synced first, then the primary (LBA 1):
//! a cut before the primary is rewritten leaves the old table in the primary
//! (the kernel reads the primary), a cut during it leaves the new table in
//! the backup, and [`Gpt::open`] repairs the other copy from the one it
//! trusts. Only attributes change: the partition layout is never written
//! differently from how it was read. 512-byte logical sectors.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Logical sector size this module assumes (virtio, most disks).
pub const SECTOR: u64 = 512;
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The largest entry array read (128 entries of 128 bytes is the norm).
const MAX_ARRAY: usize = 1 << 20;

/// One used GPT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index in the entry array (partition number − 1).
    pub index: usize,
    /// The GPT name (UTF-16 in the table).
    pub name: String,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// The 64 attribute bits.
    pub attributes: u64,
}

impl Entry {
    /// Byte offset of the partition on the disk.
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// A header as read (the fields this module uses, plus its raw bytes).
#[derive(Debug, Clone)]
struct Header {
    raw: Vec<u8>,
    entries_lba: u64,
    entry_size: usize,
}

/// Which copies were valid when the table was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Both copies valid and equal.
    Good,
    /// The primary is damaged; the backup was used.
    PrimaryDamaged,
    /// The backup is damaged or missing; the primary was used.
    BackupDamaged,
    /// Both valid but different (a write was cut after the backup): the primary was used.
    CopiesDiffer,
}

/// An open GPT disk.
#[derive(Debug)]
pub struct Gpt {
    path: PathBuf,
    file: File,
    last_lba: u64,
    /// The header used as the template for both copies.
    header: Header,
    /// Where the backup entry array goes.
    backup_entries_lba: u64,
    entries: Vec<u8>,
    health: Health,
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap_or_default())
}
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap_or_default())
}

impl Gpt {
    /// Reads the GPT of `path` (a disk image or a block device).
    pub fn open(path: &Path) -> Result<Gpt> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("opening", path))?;
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(Error::io("sizing", path))?;
        if len < 68 * SECTOR {
            return Err(Error::gpt(
                path,
                format!("{len} bytes is too small for a GPT"),
            ));
        }
        let last_lba = len / SECTOR - 1;
        let primary = read_copy(&mut file, path, 1);
        let backup_lba = match &primary {
            Ok((h, _)) => le64(&h.raw[32..40]),
            Err(_) => last_lba,
        };
        let backup = read_copy(&mut file, path, backup_lba);
        let (header, entries, backup_entries_lba, health) = match (primary, backup) {
            (Ok((p, pe)), Ok((b, be))) => {
                let health = if pe == be && same_layout(&p, &b) {
                    Health::Good
                } else {
                    Health::CopiesDiffer
                };
                let bl = b.entries_lba;
                (p, pe, bl, health)
            }
            (Ok((p, pe)), Err(_)) => {
                let sectors = (pe.len() as u64).div_ceil(SECTOR);
                (p, pe, last_lba - sectors, Health::BackupDamaged)
            }
            (Err(_), Ok((b, be))) => {
                let bl = b.entries_lba;
                let mut raw = b.raw.clone();
                // The primary's own fields: at LBA 1, backup at the end, entries at LBA 2.
                raw[24..32].copy_from_slice(&1u64.to_le_bytes());
                raw[32..40].copy_from_slice(&backup_lba.to_le_bytes());
                raw[72..80].copy_from_slice(&2u64.to_le_bytes());
                let h = Header {
                    raw,
                    entries_lba: 2,
                    ..b
                };
                (h, be, bl, Health::PrimaryDamaged)
            }
            (Err(e), Err(_)) => return Err(e),
        };
        Ok(Gpt {
            path: path.to_owned(),
            file,
            last_lba: backup_lba,
            header,
            backup_entries_lba,
            entries,
            health,
        })
    }

    /// How the two copies looked when read ([`Gpt::write`] makes both good).
    pub fn health(&self) -> Health {
        self.health
    }

    /// The used entries, in table order.
    pub fn entries(&self) -> Vec<Entry> {
        let size = self.header.entry_size;
        self.entries
            .chunks(size)
            .enumerate()
            .filter(|(_, e)| e[..16].iter().any(|b| *b != 0))
            .map(|(index, e)| {
                let name: Vec<u16> = e[56..128]
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|c| *c != 0)
                    .collect();
                Entry {
                    index,
                    name: String::from_utf16_lossy(&name),
                    first_lba: le64(&e[32..40]),
                    last_lba: le64(&e[40..48]),
                    attributes: le64(&e[48..56]),
                }
            })
            .collect()
    }

    /// The entry named `name`.
    pub fn find(&self, name: &str) -> Result<Entry> {
        self.entries()
            .into_iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::gpt(&self.path, format!("no partition named {name}")))
    }

    /// Sets the attribute bits of entry `index` (in memory; [`Gpt::write`] stores them).
    pub fn set_attributes(&mut self, index: usize, attributes: u64) {
        let at = index * self.header.entry_size + 48;
        self.entries[at..at + 8].copy_from_slice(&attributes.to_le_bytes());
    }

    /// Writes both copies: backup entries and header, sync, primary entries
    /// and header, sync.
    pub fn write(&mut self) -> Result<()> {
        let crc = crc32fast::hash(&self.entries);
        let primary_entries_lba = self.header.entries_lba;
        let primary = self.header_for(1, self.last_lba, primary_entries_lba, crc);
        let backup = self.header_for(self.last_lba, 1, self.backup_entries_lba, crc);
        let sectors = (self.entries.len() as u64).div_ceil(SECTOR);
        if self.backup_entries_lba + sectors > self.last_lba
            || primary_entries_lba + sectors > self.first_usable()
        {
            return Err(Error::gpt(
                &self.path,
                "the entry arrays overlap the headers or partitions".into(),
            ));
        }
        for (hdr, entries_lba, what) in [
            (
                &backup,
                self.backup_entries_lba,
                "writing the backup GPT of",
            ),
            (&primary, primary_entries_lba, "writing the primary GPT of"),
        ] {
            let entries = std::mem::take(&mut self.entries);
            let wrote = self
                .put(entries_lba * SECTOR, &entries, what)
                .and_then(|()| self.put(le64(&hdr[24..32]) * SECTOR, hdr, what));
            self.entries = entries;
            wrote?;
            self.file
                .sync_data()
                .map_err(Error::io("syncing the GPT of", &self.path))?;
        }
        self.header.raw = primary;
        self.health = Health::Good;
        Ok(())
    }

    fn first_usable(&self) -> u64 {
        le64(&self.header.raw[40..48])
    }

    fn header_for(&self, my: u64, alt: u64, entries_lba: u64, entries_crc: u32) -> Vec<u8> {
        let mut h = self.header.raw.clone();
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        h[16..20].copy_from_slice(&[0; 4]);
        let crc = crc32fast::hash(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn put(&mut self, at: u64, bytes: &[u8], ctx: &'static str) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(at))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(Error::io(ctx, &self.path))
    }
}

fn same_layout(a: &Header, b: &Header) -> bool {
    // Everything but the fields that differ between the copies by design
    // (CRC, my/alternate LBA, entry array LBA).
    a.raw[..16] == b.raw[..16] && a.raw[40..72] == b.raw[40..72] && a.raw[80..92] == b.raw[80..92]
}

/// Reads and checks the header at `lba` and its entry array.
fn read_copy(file: &mut File, path: &Path, lba: u64) -> Result<(Header, Vec<u8>)> {
    let bad = |m: String| Error::gpt(path, format!("GPT header at LBA {lba}: {m}"));
    let mut sector = vec![0u8; SECTOR as usize];
    file.seek(SeekFrom::Start(lba * SECTOR))
        .and_then(|_| file.read_exact(&mut sector))
        .map_err(Error::io("reading the GPT of", path))?;
    if &sector[..8] != SIGNATURE {
        return Err(bad("no \"EFI PART\" signature".into()));
    }
    let size = le32(&sector[12..16]) as usize;
    if !(92..=SECTOR as usize).contains(&size) {
        return Err(bad(format!("header size {size}")));
    }
    let mut raw = sector[..size].to_vec();
    let crc = le32(&raw[16..20]);
    raw[16..20].copy_from_slice(&[0; 4]);
    if crc32fast::hash(&raw) != crc {
        return Err(bad("header CRC mismatch".into()));
    }
    raw[16..20].copy_from_slice(&crc.to_le_bytes());
    if le64(&raw[24..32]) != lba {
        return Err(bad(format!("says it is at LBA {}", le64(&raw[24..32]))));
    }
    let (entries_lba, count, entry_size) = (
        le64(&raw[72..80]),
        le32(&raw[80..84]) as usize,
        le32(&raw[84..88]) as usize,
    );
    if entry_size < 128 || entry_size % 8 != 0 || count.saturating_mul(entry_size) > MAX_ARRAY {
        return Err(bad(format!(
            "implausible entry array ({count} × {entry_size})"
        )));
    }
    let mut entries = vec![0u8; count * entry_size];
    file.seek(SeekFrom::Start(entries_lba * SECTOR))
        .and_then(|_| file.read_exact(&mut entries))
        .map_err(Error::io("reading the GPT entries of", path))?;
    if crc32fast::hash(&entries) != le32(&raw[88..92]) {
        return Err(bad("entry array CRC mismatch".into()));
    }
    Ok((
        Header {
            raw,
            entries_lba,
            entry_size,
        },
        entries,
    ))
}
