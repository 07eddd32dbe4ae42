//! Known-good promotion: the applied config becomes the rollback config
//! once every activated app has been RUNNING (and nothing was rejected) for
//! a whole healthy window. The agent keeps a [`HealthTracker`], feeds it
//! each pass's statuses and does the store write when it says so.

use outpost_api::{AppConfig, SwState};

use crate::status::AppStatusUpdate;

/// The config in effect, as far as promotion cares.
#[derive(Clone, Copy, Debug)]
pub struct ConfigInEffect<'a> {
    /// Its generation (promoted at most once).
    pub generation: u64,
    /// Its valid apps; only the activated ones must be RUNNING.
    pub apps: &'a [AppConfig],
    /// How many entries were rejected (any blocks promotion).
    pub rejected: usize,
}

/// What the loop remembers between passes about the config's health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthTracker {
    /// Since when (Unix ms) the config in effect has been healthy without a
    /// break; `None` while it is not.
    pub healthy_since: Option<u64>,
    /// The generation last promoted to known-good.
    pub promoted_generation: Option<u64>,
}

impl HealthTracker {
    /// A config was accepted: its healthy window starts anew.
    pub fn config_changed(&mut self) {
        self.healthy_since = None;
    }

    /// Takes this pass's statuses into account and says whether `cfg` is
    /// to be promoted now: healthy (every activated app RUNNING, none
    /// rejected) for at least `after_ms` and not promoted yet. A break in
    /// health restarts the window. Call [`HealthTracker::promoted`] once
    /// the promotion is saved; until then it is asked for again.
    pub fn observe(
        &mut self,
        cfg: &ConfigInEffect,
        statuses: &[AppStatusUpdate],
        after_ms: u64,
        now_ms: u64,
    ) -> bool {
        let healthy = cfg.rejected == 0
            && cfg.apps.iter().filter(|a| a.activate).all(|a| {
                statuses
                    .iter()
                    .any(|u| u.uuid == a.uuid && u.state == SwState::Running)
            });
        if !healthy {
            self.healthy_since = None;
            return false;
        }
        let since = *self.healthy_since.get_or_insert(now_ms);
        self.promoted_generation != Some(cfg.generation) && now_ms.saturating_sub(since) >= after_ms
    }

    /// Records that `generation` was promoted (no further promotion of it).
    pub fn promoted(&mut self, generation: u64) {
        self.promoted_generation = Some(generation);
    }
}
