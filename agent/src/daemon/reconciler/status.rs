//! The statuses the loop publishes: one per app, from the planner's
//! updates, what containerd shows and the config (never the VNC password,
//! only whether one is in effect).

use std::collections::BTreeMap;
use std::sync::Arc;

use outpost_api::{AppConfig, AppStatus, DomainStatus, DownloadStatus, SwState};
use outpost_reconcile::{
    keep_removed_visible, local_override_note, Action, AppStatusUpdate, Phase,
};

use super::core::Reconciler;
use crate::daemon::downloads::Downloads;
use crate::daemon::driver::{Driver, Found};
use crate::daemon::snapshot::{Current, Snapshot};

/// `statuses` with every app that waits for its image shown DOWNLOADING,
/// with the bytes so far.
pub(super) fn with_downloads(
    statuses: &BTreeMap<String, AppStatus>,
    downloads: &Downloads,
) -> BTreeMap<String, AppStatus> {
    statuses
        .iter()
        .map(|(k, s)| {
            let mut s = s.clone();
            if s.state != SwState::Running {
                if let Some(p) = downloads.progress(&s.image) {
                    s.state = SwState::Downloading;
                    s.download = Some(DownloadStatus {
                        done: p.done,
                        total: p.total,
                    });
                }
            }
            (k.clone(), s)
        })
        .collect()
}

impl<D: Driver> Reconciler<D> {
    /// Publishes the state as one immutable snapshot (download progress
    /// applied to the statuses of apps waiting for their image).
    pub(crate) fn publish_snapshot(&mut self) {
        let overlaid = with_downloads(&self.statuses, &self.exec.downloads);
        if *self.published != overlaid {
            self.published = Arc::new(overlaid);
        }
        self.counters.downloads_refused = self.exec.downloads.refused();
        let snap = Snapshot {
            current: self.current.clone(),
            statuses: self.published.clone(),
            config_error: self.config_error.clone(),
            link: self.link.clone(),
            counters: self.counters,
            started: self.started,
        };
        self.snapshot.send_replace(Arc::new(snap));
    }

    /// Makes the statuses of this pass from the planner's updates, what the
    /// runtime shows and the config, and publishes them.
    pub(super) async fn publish(
        &mut self,
        cur: &Current,
        desired: &[AppConfig],
        found: &[Found],
        updates: &[AppStatusUpdate],
        actions: &[Action],
    ) {
        let mut statuses = BTreeMap::new();
        for u in updates {
            let app = desired
                .iter()
                .find(|a| a.uuid == u.uuid)
                .or_else(|| {
                    self.history
                        .apps
                        .get(&u.uuid)
                        .and_then(|r| r.applied.as_ref())
                })
                .cloned();
            let app = app.as_ref();
            let rejected = cur
                .rejected
                .iter()
                .find(|r| r.uuid.as_deref() == Some(u.uuid.as_str()));
            let obs = found.iter().find(|o| o.app.uuid == u.uuid);
            let vnc = match app {
                Some(a) => self.vnc_set(a).await,
                None => false,
            };
            let rec = self.history.apps.get(&u.uuid);
            let domain = obs.map(|o| DomainStatus {
                task_id: o.app.task_id.clone(),
                pid: o.app.pid,
                exit_code: o.app.exit_status.filter(|_| o.app.phase == Phase::Stopped),
                started_at: rec.and_then(|r| r.started_ms).and_then(|ms| {
                    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
                }),
                runtime: o.runtime.clone(),
                memory_limit_bytes: app.and_then(|a| a.resources.memory_kib.checked_mul(1024)),
                ips: o
                    .ips
                    .iter()
                    .map(|(net, ip)| format!("{net}={ip}"))
                    .collect(),
            });
            let status = AppStatus {
                uuid: u.uuid.clone(),
                display_name: app
                    .map(|a| a.display_name.clone())
                    .or_else(|| rejected.and_then(|r| r.display_name.clone()))
                    .unwrap_or_else(|| u.uuid.clone()),
                version: app.map(|a| a.version.clone()).unwrap_or_default(),
                image: app.map(|a| a.image.clone()).unwrap_or_default(),
                state: u.state,
                activated: app.map(|a| a.activate).unwrap_or(false),
                restarts: u.restarts,
                domain,
                backoff: u.backoff.clone(),
                error: u.error.clone(),
                vnc_password_set: vnc,
                download: None,
                local_override: local_override_note(&self.history, &u.uuid, cur.config.generation),
            };
            statuses.insert(u.uuid.clone(), status);
        }
        // Rejected entries without a UUID of their own show under `apps[i]`.
        statuses.extend(super::unplaced::statuses(cur, &self.statuses));
        // An app being removed stays visible (HALTING) until it is gone,
        // in the same update readers see (no moment without it).
        keep_removed_visible(actions, &self.statuses, &mut statuses);
        if statuses != self.statuses {
            self.statuses = statuses;
            self.publish_snapshot();
        }
    }

    /// Whether a VNC password is in effect (config, else the image label).
    pub(super) async fn vnc_set(&mut self, app: &AppConfig) -> bool {
        if app.vnc.password.is_some() {
            return true;
        }
        if let Some(v) = self.vnc_by_image.get(&app.image) {
            return *v;
        }
        match self.exec.driver.image_sets_vnc(app).await {
            Some(set) => {
                self.vnc_by_image.insert(app.image.clone(), set);
                set
            }
            None => false,
        }
    }
}
