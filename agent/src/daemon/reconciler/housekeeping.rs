//! What the loop does besides acting on apps: promoting the applied config
//! to known-good after a healthy window, and deleting images no config
//! needs any more.

use outpost_api::SwState;
use outpost_reconcile::AppStatusUpdate;

use super::{now_ms, Reconciler};
use crate::daemon::state::Current;

impl Reconciler {
    /// Promotes the applied config to known-good after a healthy window:
    /// every activated app RUNNING and none rejected.
    pub(super) fn track_health(&mut self, cur: &Current, updates: &[AppStatusUpdate]) {
        let healthy = cur.rejected.is_empty()
            && cur.config.apps.iter().filter(|a| a.activate).all(|a| {
                updates
                    .iter()
                    .any(|u| u.uuid == a.uuid && u.state == SwState::Running)
            });
        if !healthy {
            self.healthy_since = None;
            return;
        }
        let now = now_ms();
        let since = *self.healthy_since.get_or_insert(now);
        if self.promoted_generation != Some(cur.config.generation)
            && now.saturating_sub(since) >= self.opts.known_good_after.as_millis() as u64
        {
            match self.shared.store.promote_known_good(now) {
                Ok(_) => {
                    tracing::info!(
                        generation = cur.config.generation,
                        "config promoted to known-good"
                    );
                    self.promoted_generation = Some(cur.config.generation);
                }
                Err(e) => tracing::error!(error = %e, "promoting known-good config"),
            }
        }
    }

    /// Deletes images no app needs — neither the config in effect, nor what
    /// apps were last built from, nor the known-good config kept for
    /// rollback — once older than the grace period. Runs when the loop is
    /// idle, at most once per grace period.
    pub(super) async fn collect_images(&mut self, cur: &Current) {
        let grace = self.opts.image_gc_grace;
        if self.last_gc.is_some_and(|t| t.elapsed() < grace) {
            return;
        }
        self.last_gc = Some(std::time::Instant::now());
        let mut keep: std::collections::HashSet<String> =
            cur.config.apps.iter().map(|a| a.image.clone()).collect();
        keep.extend(
            self.history
                .apps
                .values()
                .filter_map(|r| r.applied.as_ref().map(|a| a.image.clone())),
        );
        match self.shared.store.known_good_config() {
            Ok(Some(cp)) => {
                if let Ok(p) = outpost_api::parse_device_config_bytes(&cp.raw) {
                    keep.extend(p.config.apps.into_iter().map(|a| a.image));
                }
            }
            Ok(None) => {}
            Err(e) => {
                // Without the rollback set nothing may be deleted safely.
                tracing::warn!(error = %e, "image GC skipped: known-good config unreadable");
                return;
            }
        }
        match outpost_runtime::pull::gc::collect_images(self.shared.runtime.client(), &keep, grace)
            .await
        {
            Ok(gone) if !gone.is_empty() => tracing::info!(images = ?gone, "unused images removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image GC failed"),
        }
    }
}
