//! Installing a base OS image into a slot (blocking; runs on the blocking
//! pool): stream it in, resuming an interrupted download, check its
//! sha256, read it back, and mark the slot "updating".

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use outpost_api::BaseOsConfig;
use outpost_baseos::{find_disk, read_slots, write_slots, Gpt, SlotState};
use outpost_runtime::Layout;
use sha2::{Digest, Sha256};

use super::fetch::{open_source, FetchError};
use super::record::{Phase, Record};

/// Copy buffer (the only image bytes held in memory).
const CHUNK: usize = 1 << 20;
/// A download's progress is made durable (slot synced, record saved) every
/// this many bytes, so an interruption or a reboot costs at most this much.
const SYNC_EVERY: u64 = 16 << 20;

/// Download, verify, mark "updating".
pub fn install(
    layout: &Layout,
    path: &Path,
    rec: &mut Record,
    cfg: &BaseOsConfig,
    target: &str,
) -> Result<(), FetchError> {
    let permanent = FetchError::Permanent;
    let (disk, g) = open_gpt().map_err(permanent)?;
    let part = g.find(target).map_err(|e| permanent(e.into()))?;
    // Never leave a half-written slot bootable.
    set_slot(target, SlotState::UNUSED).map_err(permanent)?;
    let area = SlotArea {
        dev: disk.clone(),
        label: target.to_owned(),
        offset: part.offset(),
        size: part.size(),
    };
    let len = download(layout, path, rec, cfg, &area)?;
    verify(path, rec, cfg, &area, len).map_err(permanent)?;
    set_slot(target, SlotState::UPDATING).map_err(permanent)?;
    rec.phase = Phase::Installed;
    rec.downloaded = 0;
    rec.save(path).map_err(|e| permanent(e.into()))?;
    Ok(())
}

/// Where a slot's bytes go: a region of a block device (or, in tests, of a file).
#[derive(Debug, Clone)]
pub struct SlotArea {
    /// The disk.
    pub dev: PathBuf,
    /// The slot's name, for messages.
    pub label: String,
    /// First byte of the slot on the disk.
    pub offset: u64,
    /// The slot's size.
    pub size: u64,
}

/// Streams the image into `area` and checks its sha256; returns its length.
/// Bytes an earlier, interrupted try made durable (`rec.downloaded`) are
/// read back into the hash and the rest is asked for from there on.
/// Progress is synced and saved every [`SYNC_EVERY`] bytes and when the
/// stream breaks (a [`FetchError::Transient`] then: the next try resumes).
pub fn download(
    layout: &Layout,
    path: &Path,
    rec: &mut Record,
    cfg: &BaseOsConfig,
    area: &SlotArea,
) -> Result<u64, FetchError> {
    let permanent = |e: anyhow::Error| FetchError::Permanent(e);
    let io = |what: &str, e: std::io::Error| {
        FetchError::Permanent(anyhow::anyhow!(
            "{what} slot {} on {}: {e}",
            area.label,
            area.dev.display()
        ))
    };
    let mut out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&area.dev)
        .map_err(|e| io("opening", e))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let from = rec.downloaded.min(area.size);
    out.seek(SeekFrom::Start(area.offset))
        .map_err(|e| io("reading", e))?;
    hash_from(&mut out, from, &mut hash, &mut buf).map_err(|e| io("reading", e))?;
    let mut src = open_source(&cfg.url, layout, from)?;
    if src.start != from {
        // The server sent the whole image: start over.
        hash = Sha256::new();
        out.seek(SeekFrom::Start(area.offset))
            .map_err(|e| io("writing", e))?;
    } else if from > 0 {
        tracing::info!(from, "base OS: resuming the download");
    }
    let mut len = src.start;
    let mut synced = len;
    loop {
        let n = match src.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                // Keep what arrived: the next try asks for the rest.
                out.sync_data().map_err(|e| io("syncing", e))?;
                rec.downloaded = len;
                rec.save(path).map_err(|e| permanent(e.into()))?;
                return Err(FetchError::Transient(
                    anyhow::Error::new(e).context(format!("reading {}", cfg.url)),
                ));
            }
        };
        if len + n as u64 > area.size {
            return Err(permanent(anyhow::anyhow!(
                "{} is larger than slot {} ({} bytes)",
                cfg.url,
                area.label,
                area.size
            )));
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| io("writing", e))?;
        len += n as u64;
        if len - synced >= SYNC_EVERY {
            out.sync_data().map_err(|e| io("syncing", e))?;
            synced = len;
            rec.downloaded = len;
            rec.save(path).map_err(|e| permanent(e.into()))?;
        }
    }
    out.sync_all().map_err(|e| io("syncing", e))?;
    rec.downloaded = len;
    let got = hex::encode(hash.finalize());
    if got != cfg.sha256 {
        let resumed = from > 0 && src.start == from;
        rec.downloaded = 0;
        rec.save(path).map_err(|e| permanent(e.into()))?;
        let e = anyhow::anyhow!(
            "{} has sha256 {got}, the config says {}",
            cfg.url,
            cfg.sha256
        );
        // A resumed download may have joined two different files (the
        // image changed on the server): one more try, from the beginning.
        return Err(if resumed {
            FetchError::Transient(e.context("the resumed download does not match"))
        } else {
            FetchError::Permanent(e)
        });
    }
    Ok(len)
}

/// Feeds the next `len` bytes of `f` into `hash`.
fn hash_from(
    f: &mut std::fs::File,
    len: u64,
    hash: &mut Sha256,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let (mut left, cap) = (len, buf.len() as u64);
    while left > 0 {
        let n = f.read(&mut buf[..cap.min(left) as usize])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "reads back short",
            ));
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// Reads back what landed on the disk and checks it again.
fn verify(
    path: &Path,
    rec: &mut Record,
    cfg: &BaseOsConfig,
    area: &SlotArea,
    len: u64,
) -> Result<()> {
    rec.phase = Phase::Verifying;
    rec.save(path)?;
    let mut back = std::fs::File::open(&area.dev)?;
    back.seek(SeekFrom::Start(area.offset))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    hash_from(&mut back, len, &mut hash, &mut buf)
        .with_context(|| format!("slot {}", area.label))?;
    let back = hex::encode(hash.finalize());
    if back != cfg.sha256 {
        bail!(
            "slot {} reads back with sha256 {back}, expected {}",
            area.label,
            cfg.sha256
        );
    }
    Ok(())
}

pub(super) fn open_gpt() -> Result<(PathBuf, Gpt)> {
    let disk = find_disk(Path::new("/sys/block"), Path::new("/dev"))?;
    let g = Gpt::open(&disk)?;
    Ok((disk, g))
}

/// Sets slot `label`'s state; the GPT is written only when that changes
/// it (an interrupted download is retried for hours: no flash wear).
pub(super) fn set_slot(label: &str, state: SlotState) -> Result<()> {
    let (_, mut g) = open_gpt()?;
    let mut slots = read_slots(&g)?;
    let mut changed = false;
    for s in slots.iter_mut().filter(|s| s.label == label) {
        changed |= s.state != state;
        s.state = state;
    }
    if changed {
        write_slots(&mut g, &slots)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "download_tests.rs"]
mod tests;
