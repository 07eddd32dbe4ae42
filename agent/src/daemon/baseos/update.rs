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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use outpost_api::{BaseOsConfig, SwState};
use outpost_baseos::{read_slots, write_slots, SlotState, SLOTS};

use super::fetch::FetchError;
use super::install::{install, open_gpt, set_slot};
use super::record::{Phase, Record};
use crate::daemon::snapshot::Handle;

/// Agent starts on a slot under test before it is rolled back.
pub const MAX_AGENT_STARTS: u32 = 3;
/// How often the task looks at the config and the health.
const TICK: Duration = Duration::from_secs(2);
/// First wait before an interrupted download is tried again (doubling).
const RETRY_FIRST: Duration = Duration::from_secs(10);
/// Longest wait between tries of an interrupted download.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The wait before try `attempt + 1` of an interrupted download (attempt 1:
/// the first interruption).
pub fn retry_delay(attempt: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

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
        // Cut short by a reboot or crash: a download goes on from the
        // bytes it made durable (`downloaded`); a check starts over.
        Phase::Downloading => {}
        Phase::Verifying => {
            rec.phase = Phase::Idle;
            rec.downloaded = 0;
        }
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
    // An interrupted download: when to try again, and how many tries failed.
    let mut retry: Option<(Instant, u32)> = None;
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
        let target = other_slot(&slot).to_owned();
        let resuming = rec.phase == Phase::Downloading
            && rec.sha256.as_deref() == Some(cfg.sha256.as_str())
            && rec.target.as_deref() == Some(target.as_str());
        if !resuming {
            retry = None;
            rec = Record {
                phase: Phase::Downloading,
                version: Some(cfg.version.clone()),
                sha256: Some(cfg.sha256.clone()),
                retry: cfg.retry,
                target: Some(target.clone()),
                reason: None,
                agent_starts: 0,
                downloaded: 0,
                slots: rec.slots,
                failed: rec.failed,
            };
            rec.save(&path)?;
            tracing::info!(version = cfg.version, target = ?rec.target, "base OS: downloading");
        } else if retry.is_some_and(|(at, _)| Instant::now() < at) {
            continue;
        }
        let (p2, c2, t2) = (path.clone(), cfg.clone(), target.clone());
        let (mut r2, l2) = (rec.clone(), handle.layout.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let r = install(&l2, &p2, &mut r2, &c2, &t2);
            (r2, r)
        })
        .await;
        let outcome = match joined {
            Ok((r, outcome)) => {
                rec = r;
                outcome
            }
            Err(e) => Err(FetchError::Permanent(anyhow::anyhow!(
                "the install task failed: {e}"
            ))),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(target, version = ?rec.version, "base OS installed; rebooting into it");
                reboot().await;
                return Ok(());
            }
            Err(FetchError::Transient(e)) => {
                let attempt = retry.map_or(1, |(_, a)| a + 1);
                let wait = retry_delay(attempt);
                retry = Some((Instant::now() + wait, attempt));
                rec.reason = Some(format!(
                    "download interrupted with {} bytes in the slot, retrying in {}s (try {}): {e:#}",
                    rec.downloaded,
                    wait.as_secs(),
                    attempt + 1
                ));
                rec.save(&path)?;
                tracing::warn!(error = %format!("{e:#}"), downloaded = rec.downloaded, retry_in_s = wait.as_secs(), "base OS download interrupted; it resumes from there");
            }
            Err(FetchError::Permanent(e)) => {
                retry = None;
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

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
