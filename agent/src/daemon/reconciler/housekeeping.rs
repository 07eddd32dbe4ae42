//! What the loop does besides acting on apps: promoting the applied config
//! to known-good after a healthy window, and deleting images no config
//! needs any more.

use outpost_reconcile::{images_to_keep, AppStatusUpdate, ConfigInEffect, KnownGood};

use super::core::Reconciler;
use crate::daemon::driver::Driver;
use crate::daemon::snapshot::Current;

impl<D: Driver> Reconciler<D> {
    /// Promotes the applied config to known-good after a healthy window:
    /// every activated app RUNNING and none rejected.
    pub(super) fn track_health(&mut self, cur: &Current, updates: &[AppStatusUpdate]) {
        let cfg = ConfigInEffect {
            generation: cur.config.generation,
            apps: &cur.config.apps,
            rejected: cur.rejected.len(),
        };
        let now = self.clock.now_ms();
        let after = self.opts.known_good_after.as_millis() as u64;
        if !self.health.observe(&cfg, updates, after, now) {
            return;
        }
        match self.store.promote_known_good(now) {
            Ok(_) => {
                tracing::info!(generation = cfg.generation, "config promoted to known-good");
                self.health.promoted(cfg.generation);
            }
            Err(e) => tracing::error!(error = %e, "promoting known-good config"),
        }
    }

    /// Deletes images no app needs — neither the config in effect, nor what
    /// apps were last built from, nor the known-good config kept for
    /// rollback — once older than the grace period. Runs when the loop is
    /// idle, at most once per grace period.
    pub(super) async fn collect_images(&mut self, cur: &Current) {
        let grace = self.opts.image_gc_grace;
        let now = self.clock.now_ms();
        if self
            .last_gc_ms
            .is_some_and(|t| now.saturating_sub(t) < grace.as_millis() as u64)
        {
            return;
        }
        self.last_gc_ms = Some(now);
        let rollback_apps;
        let known_good = match self.store.known_good_config() {
            Ok(Some(cp)) => match outpost_api::parse_device_config_bytes(&cp.raw) {
                Ok(p) => {
                    rollback_apps = p.config.apps;
                    KnownGood::Apps(&rollback_apps)
                }
                // The rollback set is unknown: deleting anything could
                // take an image the known-good config needs.
                Err(e) => {
                    tracing::warn!(error = %e, "image GC skipped: known-good config does not parse");
                    KnownGood::Unreadable
                }
            },
            Ok(None) => KnownGood::None,
            Err(e) => {
                tracing::warn!(error = %e, "image GC skipped: known-good config unreadable");
                KnownGood::Unreadable
            }
        };
        // Without the rollback set nothing may be deleted safely.
        let Some(keep) = images_to_keep(&cur.config.apps, &self.history, known_good) else {
            return;
        };
        let keep: std::collections::HashSet<String> = keep.into_iter().collect();
        match self.exec.driver.collect_images(&keep, grace).await {
            Ok(gone) if !gone.is_empty() => tracing::info!(images = ?gone, "unused images removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image GC failed"),
        }
    }
}
