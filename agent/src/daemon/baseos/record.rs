//! The base OS update's persisted record (`/persist/status/baseos.json`,
//! written by temp file + rename): the step it is at, the image, the slots'
//! known digests and the versions that failed. Small and bounded.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Failed images remembered at most (oldest dropped).
pub const MAX_FAILED: usize = 16;
/// Bytes of the record read at most.
pub const MAX_RECORD_BYTES: u64 = 64 << 10;

/// The update steps, as status shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    /// Nothing in progress.
    #[default]
    Idle,
    /// Streaming the image into the other slot.
    Downloading,
    /// Reading the slot back and checking the digest.
    Verifying,
    /// The other slot is marked "updating"; rebooting into it.
    Installed,
    /// Running the new slot inside its test window.
    Testing,
    /// The new slot is committed (successful, the other one unused).
    Committed,
    /// Back on the previous slot; `reason` says why.
    RolledBack,
    /// The image was refused before any reboot (download or digest); `reason` says why.
    Failed,
}

impl Phase {
    /// The name status shows (`ROLLED BACK`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "IDLE",
            Phase::Downloading => "DOWNLOADING",
            Phase::Verifying => "VERIFYING",
            Phase::Installed => "INSTALLED",
            Phase::Testing => "TESTING",
            Phase::Committed => "COMMITTED",
            Phase::RolledBack => "ROLLED BACK",
            Phase::Failed => "FAILED",
        }
    }
}

/// An image that failed, by digest and the retry counter it failed under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    /// Its sha256.
    pub sha256: String,
    /// `base_os.retry` when it failed: a higher one allows another try.
    pub retry: u32,
}

/// The record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The step.
    pub phase: Phase,
    /// The image's version (from the config).
    pub version: Option<String>,
    /// The image's sha256.
    pub sha256: Option<String>,
    /// Its retry counter.
    #[serde(default)]
    pub retry: u32,
    /// The slot it goes into.
    pub target: Option<String>,
    /// Why it failed or rolled back.
    pub reason: Option<String>,
    /// Agent starts on the target slot during the test window.
    #[serde(default)]
    pub agent_starts: u32,
    /// Bytes of the image durably in the target slot while DOWNLOADING: an
    /// interrupted download resumes from there.
    #[serde(default)]
    pub downloaded: u64,
    /// The digest each slot is known to hold (committed images).
    #[serde(default)]
    pub slots: BTreeMap<String, String>,
    /// Images that failed.
    #[serde(default)]
    pub failed: Vec<Failed>,
}

impl Record {
    /// Reads the record; a missing or unreadable one is the default (logged).
    pub fn load(path: &Path) -> Record {
        use std::io::Read;
        let mut s = String::new();
        match std::fs::File::open(path) {
            Ok(f) => {
                if let Err(e) = f.take(MAX_RECORD_BYTES).read_to_string(&mut s) {
                    tracing::warn!(path = %path.display(), error = %e, "reading the base OS record");
                    return Record::default();
                }
            }
            Err(_) => return Record::default(),
        }
        serde_json::from_str(&s).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "the base OS record does not parse; starting afresh");
            Record::default()
        })
    }

    /// Writes the record (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// `sha256` failed under `retry` (or a later counter) already.
    pub fn refused(&self, sha256: &str, retry: u32) -> bool {
        self.failed
            .iter()
            .any(|f| f.sha256 == sha256 && f.retry >= retry)
    }

    /// Remembers the current image as failed, with `reason`, in `phase`.
    pub fn fail(&mut self, phase: Phase, reason: String) {
        if let Some(sha) = self.sha256.clone() {
            self.failed.retain(|f| f.sha256 != sha);
            self.failed.push(Failed {
                sha256: sha,
                retry: self.retry,
            });
            if self.failed.len() > MAX_FAILED {
                self.failed.remove(0);
            }
        }
        self.phase = phase;
        self.reason = Some(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_images_wait_for_a_retry_bump_and_stay_bounded() {
        let mut r = Record {
            sha256: Some("a".into()),
            retry: 1,
            ..Record::default()
        };
        r.fail(Phase::RolledBack, "agent crashed".into());
        assert!(r.refused("a", 0) && r.refused("a", 1));
        assert!(!r.refused("a", 2) && !r.refused("b", 0));
        assert_eq!(r.phase.name(), "ROLLED BACK");
        for i in 0..40 {
            r.sha256 = Some(format!("x{i}"));
            r.fail(Phase::Failed, "digest".into());
        }
        assert_eq!(r.failed.len(), MAX_FAILED);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("baseos.json");
        r.save(&p).unwrap();
        assert_eq!(Record::load(&p), r);
        std::fs::write(&p, "{").unwrap();
        assert_eq!(Record::load(&p), Record::default());
    }
}
