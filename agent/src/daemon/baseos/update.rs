//! The base OS update (EVE's baseosmgr + nodeagent, trimmed): when the
//! config's `base_os` names an image the running slot does not hold, it is
//! streamed into the other slot (bounded memory, at most the slot's size),
//! read back and checked against its sha256, the slot is marked "updating"
//! (priority 3, one try) and the device reboots. On the new slot the test
//! window runs: committed (slot active, the old one unused) as soon as the
//! config is applied, every activated app RUNNING and the controller (if
//! one is configured) reached; rolled back (slot marked failed, reboot
//! into the old one) when the window ends first, the controller stays
//! unreachable for `fallback`, or the agent starts more than
//! [`MAX_AGENT_STARTS`] times. A hang is the watchdog's: the reset spends
//! the slot's only try and the initramfs boots the old slot, where the
//! agent records the roll-back. A failed image is not tried again until
//! `base_os.retry` grows.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_api::{BaseOsConfig, SwState};
use outpost_baseos::{find_disk, read_slots, write_slots, Gpt, SlotState, SLOTS};
use sha2::{Digest, Sha256};

use super::fetch::open_source;
use super::record::{Phase, Record};
use crate::daemon::snapshot::Handle;
use outpost_runtime::Layout;

/// Agent starts on a slot under test before it is rolled back.
pub const MAX_AGENT_STARTS: u32 = 3;
/// How often the task looks at the config and the health.
const TICK: Duration = Duration::from_secs(2);
/// Copy buffer (the only image bytes held in memory).
const CHUNK: usize = 1 << 20;

/// The record's path.
pub fn record_path(handle: &Handle) -> PathBuf {
    handle.layout.status_dir().join("baseos.json")
}

/// What the health checks see during the test window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The config is applied (the agent acted on every document).
    pub settled: bool,
    /// Activated apps, and those RUNNING.
    pub apps: (usize, usize),
    /// `None`: no controller configured; else how long since its last answer
    /// (`None` inside: never answered this boot).
    pub controller: Option<Option<Duration>>,
}

/// The test window's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep testing.
    Wait,
    /// Healthy: commit.
    Commit,
    /// Roll back, for this reason.
    Fallback(String),
}

/// Judges the slot under test `elapsed` into its window.
pub fn judge(elapsed: Duration, cfg: &BaseOsConfig, h: &Health) -> Verdict {
    let reached = match h.controller {
        None => true,
        Some(Some(ago)) => ago < cfg.fallback,
        Some(None) => false,
    };
    if let Some(c) = h.controller {
        let silent = c.unwrap_or(elapsed).min(elapsed);
        if silent >= cfg.fallback {
            return Verdict::Fallback(format!(
                "the controller was unreachable for {}s of the test window",
                silent.as_secs()
            ));
        }
    }
    if h.settled && h.apps.0 == h.apps.1 && reached {
        return Verdict::Commit;
    }
    if elapsed >= cfg.test_window {
        return Verdict::Fallback(format!(
            "not healthy within the {}s test window (config applied: {}, apps RUNNING: {}/{}, controller reached: {reached})",
            cfg.test_window.as_secs(),
            h.settled,
            h.apps.1,
            h.apps.0
        ));
    }
    Verdict::Wait
}

/// At agent start: moves the record on from what happened across the
/// reboot. Returns a reason when the slot under test must be rolled back now.
pub fn on_start(rec: &mut Record, slot: &str, notes: &[String]) -> Option<String> {
    let target = rec.target.clone().unwrap_or_default();
    match rec.phase {
        Phase::Installed | Phase::Testing if slot == target => {
            rec.agent_starts += 1;
            rec.phase = Phase::Testing;
            if rec.agent_starts > MAX_AGENT_STARTS {
                return Some(format!(
                    "the agent started {} times on {target} during the test window",
                    rec.agent_starts
                ));
            }
        }
        Phase::Installed | Phase::Testing => {
            let why = if rec.phase == Phase::Installed {
                format!("{target} did not boot")
            } else {
                format!("{target} was reset before it was committed (hang, crash or watchdog)")
            };
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join("; "))
            };
            rec.fail(Phase::RolledBack, format!("{why}; back on {slot}{notes}"));
        }
        // Cut short by a reboot or crash: start over when the config still asks.
        Phase::Downloading | Phase::Verifying => rec.phase = Phase::Idle,
        _ => {}
    }
    None
}

/// Starts the update task (nothing to do on a system without slots).
pub fn spawn(handle: Handle) -> Option<tokio::task::JoinHandle<()>> {
    let view = super::view(&handle.layout)?;
    Some(tokio::spawn(async move {
        if let Err(e) = run(handle, view.slot, view.notes).await {
            tracing::error!(error = %format!("{e:#}"), "base OS update task stopped");
        }
    }))
}

async fn run(handle: Handle, slot: String, notes: Vec<String>) -> Result<()> {
    let path = record_path(&handle);
    let mut rec = Record::load(&path);
    let started = Instant::now();
    if let Some(reason) = on_start(&mut rec, &slot, &notes) {
        return fall_back(&path, &mut rec, &slot, reason).await;
    }
    if rec.phase == Phase::RolledBack {
        // The initramfs may have done it already; make sure the failed slot stays off.
        if let Some(t) = rec.target.clone().filter(|t| *t != slot) {
            set_slot(&t, SlotState::UNUSED)?;
        }
    }
    rec.save(&path).context("saving the base OS record")?;
    tracing::info!(slot, phase = rec.phase.name(), "base OS");
    loop {
        tokio::time::sleep(TICK).await;
        let cfg = handle
            .now()
            .current
            .as_ref()
            .and_then(|c| c.config.base_os.clone());
        let Some(cfg) = cfg else { continue };
        if rec.phase == Phase::Testing {
            match judge(started.elapsed(), &cfg, &health(&handle)) {
                Verdict::Wait => {}
                Verdict::Commit => {
                    commit(&slot)?;
                    rec.slots
                        .insert(slot.clone(), rec.sha256.clone().unwrap_or_default());
                    let other = other_slot(&slot);
                    rec.slots.remove(other);
                    rec.phase = Phase::Committed;
                    rec.reason = None;
                    rec.save(&path)?;
                    tracing::info!(slot, version = ?rec.version, secs = started.elapsed().as_secs(), "base OS committed");
                }
                Verdict::Fallback(reason) => {
                    return fall_back(&path, &mut rec, &slot, reason).await
                }
            }
            continue;
        }
        if rec.slots.get(&slot) == Some(&cfg.sha256) || rec.refused(&cfg.sha256, cfg.retry) {
            continue;
        }
        rec = Record {
            phase: Phase::Downloading,
            version: Some(cfg.version.clone()),
            sha256: Some(cfg.sha256.clone()),
            retry: cfg.retry,
            target: Some(other_slot(&slot).to_owned()),
            reason: None,
            agent_starts: 0,
            slots: rec.slots,
            failed: rec.failed,
        };
        rec.save(&path)?;
        tracing::info!(version = cfg.version, target = ?rec.target, "base OS: downloading");
        let target = other_slot(&slot).to_owned();
        let (p2, c2, t2) = (path.clone(), cfg.clone(), target.clone());
        let (mut r2, l2) = (rec.clone(), handle.layout.clone());
        let outcome =
            tokio::task::spawn_blocking(move || install(&l2, &p2, &mut r2, &c2, &t2).map(|()| r2))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("the install task failed: {e}")));
        match outcome {
            Ok(r) => {
                tracing::info!(target, version = ?r.version, "base OS installed; rebooting into it");
                reboot().await;
                return Ok(());
            }
            Err(e) => {
                rec.fail(Phase::Failed, format!("{e:#}"));
                rec.save(&path)?;
                tracing::error!(error = %format!("{e:#}"), "base OS image refused");
            }
        }
    }
}

fn health(handle: &Handle) -> Health {
    let snap = handle.now();
    let info = snap.info();
    let statuses = snap.statuses();
    let active: Vec<_> = statuses.iter().filter(|a| a.activated).collect();
    Health {
        settled: info.settled(1),
        apps: (
            active.len(),
            active
                .iter()
                .filter(|a| a.state == SwState::Running)
                .count(),
        ),
        controller: info
            .controller
            .map(|c| c.last_contact_secs_ago.map(Duration::from_secs)),
    }
}

fn other_slot(slot: &str) -> &'static str {
    if slot == SLOTS[0] {
        SLOTS[1]
    } else {
        SLOTS[0]
    }
}

fn open_gpt() -> Result<(PathBuf, Gpt)> {
    let disk = find_disk(Path::new("/sys/block"), Path::new("/dev"))?;
    let g = Gpt::open(&disk)?;
    Ok((disk, g))
}

fn set_slot(label: &str, state: SlotState) -> Result<()> {
    let (_, mut g) = open_gpt()?;
    let mut slots = read_slots(&g)?;
    for s in &mut slots {
        if s.label == label {
            s.state = state;
        }
    }
    write_slots(&mut g, &slots)?;
    Ok(())
}

/// The slot under test becomes active, the other unused (EVE).
fn commit(slot: &str) -> Result<()> {
    let (_, mut g) = open_gpt()?;
    let mut slots = read_slots(&g)?;
    for s in &mut slots {
        s.state = if s.label == slot {
            SlotState::ACTIVE
        } else {
            SlotState::UNUSED
        };
    }
    write_slots(&mut g, &slots)?;
    Ok(())
}

async fn fall_back(path: &Path, rec: &mut Record, slot: &str, reason: String) -> Result<()> {
    tracing::error!(slot, reason, "base OS: rolling back");
    set_slot(slot, SlotState::UNUSED)?;
    rec.fail(
        Phase::RolledBack,
        format!("{reason}; rolling back from {slot}"),
    );
    rec.save(path)?;
    reboot().await;
    Ok(())
}

async fn reboot() {
    match tokio::process::Command::new("reboot").status().await {
        Ok(s) if s.success() => {}
        other => tracing::error!(?other, "reboot failed"),
    }
}

/// Download, verify, mark "updating" (blocking: runs on the blocking pool).
fn install(
    layout: &Layout,
    path: &Path,
    rec: &mut Record,
    cfg: &BaseOsConfig,
    target: &str,
) -> Result<()> {
    let (disk, g) = open_gpt()?;
    let part = g.find(target)?;
    // Never leave a half-written slot bootable.
    set_slot(target, SlotState::UNUSED)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .open(&disk)
        .with_context(|| format!("opening {}", disk.display()))?;
    out.seek(SeekFrom::Start(part.offset()))?;
    let mut src = open_source(&cfg.url, layout)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .with_context(|| format!("reading {}", cfg.url))?;
        if n == 0 {
            break;
        }
        len += n as u64;
        if len > part.size() {
            bail!(
                "{} is larger than slot {target} ({} bytes)",
                cfg.url,
                part.size()
            );
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing slot {target} on {}", disk.display()))?;
    }
    out.sync_all()?;
    drop(out);
    let got = hex::encode(hash.finalize());
    if got != cfg.sha256 {
        bail!(
            "{} has sha256 {got}, the config says {}",
            cfg.url,
            cfg.sha256
        );
    }
    rec.phase = Phase::Verifying;
    rec.save(path)?;
    // Read back what landed on the disk.
    let mut back = std::fs::File::open(&disk)?;
    back.seek(SeekFrom::Start(part.offset()))?;
    let mut hash = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = back.read(&mut buf[..CHUNK.min(left as usize)])?;
        if n == 0 {
            bail!("slot {target} reads back short");
        }
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    let back = hex::encode(hash.finalize());
    if back != cfg.sha256 {
        bail!(
            "slot {target} reads back with sha256 {back}, expected {}",
            cfg.sha256
        );
    }
    set_slot(target, SlotState::UPDATING)?;
    rec.phase = Phase::Installed;
    rec.save(path)?;
    Ok(())
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
