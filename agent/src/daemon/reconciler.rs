//! The loop: observe (containerd is the truth for what exists), plan (pure),
//! execute (bounded concurrency across apps), persist the decisions, and
//! sleep until something happens — a task event, a config, an operator
//! command, a backoff deadline, or the slow periodic resync.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use outpost_api::{AppConfig, AppStatus, DomainStatus, NetworkConfig, SwState};
use outpost_reconcile::{
    plan, record_outcome, Action, AppStatusUpdate, History, Input, Observed, Phase, Tunables,
};
use outpost_runtime::events::EventStream;
use outpost_runtime::task::TaskStatus;
use outpost_runtime::ObservedApp;
use tokio::sync::{mpsc, Semaphore};

use super::executor::{Executor, PassView};
use super::source::{accept, RawConfig};
use super::state::{Current, Shared};

mod networks;
mod persist;

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct LoopOptions {
    /// Slow periodic resync when nothing happens.
    pub resync: Duration,
    /// Actions carried out at once (across apps).
    pub parallel: usize,
    /// Healthy time before the applied config becomes known-good.
    pub known_good_after: Duration,
    /// Restart backoff settings.
    pub tunables: Tunables,
    /// Unused images are deleted once this old (and checked this often).
    pub image_gc_grace: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            resync: Duration::from_secs(30),
            parallel: 4,
            known_good_after: Duration::from_secs(600),
            tunables: Tunables::default(),
            image_gc_grace: Duration::from_secs(600),
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The reconcile loop; returns when `stop` fires.
pub struct Reconciler {
    shared: Arc<Shared>,
    exec: Arc<Executor>,
    opts: LoopOptions,
    history: History,
    healthy_since: Option<u64>,
    promoted_generation: Option<u64>,
    vnc_by_image: HashMap<String, bool>,
    last_gc: Option<std::time::Instant>,
    /// Network instances set up by this process, as configured then
    /// (checked again only when the config or the host side changes).
    ensured_networks: HashMap<String, NetworkConfig>,
    /// Apps whose latest record could not be saved (see `persist`).
    unsaved: BTreeMap<String, persist::Unsaved>,
}

impl Reconciler {
    /// A loop over `shared`, loading the history from the store.
    pub fn new(shared: Arc<Shared>, exec: Executor, opts: LoopOptions) -> Result<Self> {
        let apps = shared.store.app_records()?;
        Ok(Reconciler {
            shared,
            exec: Arc::new(exec),
            opts,
            history: History { apps },
            healthy_since: None,
            promoted_generation: None,
            vnc_by_image: HashMap::new(),
            last_gc: None,
            ensured_networks: HashMap::new(),
            unsaved: BTreeMap::new(),
        })
    }

    /// Runs until `stop` resolves.
    pub async fn run(
        mut self,
        mut configs: mpsc::Receiver<RawConfig>,
        mut events: EventStream,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut busy_passes = 0u32;
        loop {
            let wake_at = match self.pass().await {
                Ok((acted, wake)) => {
                    if acted && busy_passes < 8 {
                        // Re-observe right away: actions changed the world.
                        busy_passes += 1;
                        continue;
                    }
                    wake
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "reconcile pass failed; retrying");
                    Some(now_ms() + 2000)
                }
            };
            busy_passes = 0;
            let until = wake_at
                .map(|w| Duration::from_millis(w.saturating_sub(now_ms())))
                .unwrap_or(self.opts.resync);
            let sleep = until.min(self.opts.resync);
            // Whatever wakes the loop, a pass follows: after a config
            // document (refused ones too, so `Progress` can say the agent
            // has acted on it), a task event, an operator command, a
            // backoff deadline or the periodic resync.
            tokio::select! {
                _ = &mut stop => return,
                Some(raw) = configs.recv() => {
                    self.take_config(raw);
                }
                Some(ev) = events.rx.recv() => tracing::debug!(?ev, "task event"),
                _ = self.shared.kick.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Accepts or refuses a document (a refused one leaves the config in effect).
    pub fn take_config(&mut self, raw: RawConfig) {
        self.shared.progress.config_evaluated();
        let current = self.shared.current.read().unwrap().clone();
        match accept(&raw, current.as_ref()) {
            Ok(next) => {
                for r in &next.rejected {
                    tracing::warn!(origin = %next.origin, "{}", r.summary());
                }
                if let Err(e) = self.shared.store.save_applied_config(
                    &raw.bytes,
                    next.config.generation,
                    now_ms(),
                ) {
                    tracing::error!(error = %e, "checkpointing the config failed; applying it anyway");
                }
                tracing::info!(origin = %next.origin, generation = next.config.generation, apps = next.config.apps.len(), rejected = next.rejected.len(), "config accepted");
                self.healthy_since = None;
                *self.shared.current.write().unwrap() = Some(next);
                *self.shared.config_error.write().unwrap() = None;
                self.shared.status_changed.notify_one();
            }
            Err(e) => {
                tracing::error!("{e}; the config in effect keeps running");
                *self.shared.config_error.write().unwrap() = Some(e.to_string());
                self.shared.status_changed.notify_one();
            }
        }
    }

    /// One observe → plan → execute round. Returns whether anything was
    /// done and when the planner wants to be woken.
    async fn pass(&mut self) -> Result<(bool, Option<u64>)> {
        let evaluated = self.shared.progress.evaluated();
        let Some(cur) = self.shared.current.read().unwrap().clone() else {
            self.shared.progress.pass_idle(evaluated);
            return Ok((false, None));
        };
        let desired = self.with_local_counters(&cur)?;
        let found = self.shared.runtime.list().await?;
        let observed: Vec<Observed> = found.iter().map(to_observed).collect();
        let now = now_ms();
        let mut out = plan(&Input {
            desired: &desired,
            rejected: &cur.rejected,
            observed: &observed,
            history: &self.history,
            now_ms: now,
            policy: self.opts.tunables,
        });
        let was_active: std::collections::HashSet<String> = self
            .history
            .apps
            .iter()
            .filter(|(_, r)| r.was_active)
            .map(|(u, _)| u.clone())
            .collect();
        // An app whose decision could not be saved keeps its old record and
        // waits; the others go on.
        let held = self.persist(&mut out.history);
        self.history = out.history;
        out.actions.retain(|a| !held.contains(a.uuid()));
        if !self.unsaved.is_empty() {
            let retry = now + persist::UNSAVED_RETRY_MS;
            out.wake_at_ms = Some(out.wake_at_ms.map_or(retry, |w| w.min(retry)));
        }
        self.show_unsaved(&mut out.statuses, |uuid| {
            desired
                .iter()
                .find(|a| a.uuid == uuid)
                .map(|a| a.display_name.clone())
                .or_else(|| {
                    cur.rejected
                        .iter()
                        .find(|r| r.uuid.as_deref() == Some(uuid))
                        .and_then(|r| r.display_name.clone())
                })
        });
        let before = self.shared.statuses.read().unwrap().clone();
        self.publish(&cur, &desired, &found, &out.statuses).await;
        // An app being removed stays visible (HALTING) until it is gone.
        {
            let mut st = self.shared.statuses.write().unwrap();
            for a in out
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Remove { .. }))
            {
                if let Some(old) = before.get(a.uuid()) {
                    let mut s = old.clone();
                    s.state = SwState::Halting;
                    st.entry(a.uuid().to_owned()).or_insert(s);
                }
            }
        }
        self.track_health(&cur, &out.statuses);
        // Network instances exist before the apps that use them start and
        // go after their last user (whose Remove ran in an earlier pass).
        let live: BTreeSet<String> = found
            .iter()
            .map(|o| o.task_id.clone())
            .chain(desired.iter().filter(|a| a.activate).flat_map(|a| {
                let planned = self
                    .history
                    .config_to_apply(&a.uuid)
                    .map(AppConfig::task_id);
                std::iter::once(a.task_id()).chain(planned)
            }))
            .collect();
        self.converge_networks(&cur.config.networks, &live).await;
        if out.actions.is_empty() {
            self.collect_images(&cur).await;
            self.shared.progress.pass_idle(evaluated);
            return Ok((false, out.wake_at_ms));
        }

        // Containers are built from what the planner decided to apply (it
        // can differ from the document, e.g. an image change still waiting
        // for its purge counter).
        let to_build = desired
            .iter()
            .map(|a| {
                let cfg = self.history.config_to_apply(&a.uuid).cloned();
                (a.uuid.clone(), cfg.unwrap_or_else(|| a.clone()))
            })
            .collect();
        let view = Arc::new(PassView {
            desired: to_build,
            observed: found
                .iter()
                .map(|o| (o.task_id.clone(), o.clone()))
                .collect(),
            applied: self
                .history
                .apps
                .iter()
                .filter_map(|(u, r)| r.applied.clone().map(|a| (u.clone(), a)))
                .collect(),
            generation: cur.config.generation,
            registries: cur.config.registries.clone(),
            networks: cur.config.networks.clone(),
        });
        // Waves: teardown first, then the apps that were running before
        // (after a reboot they come back first), then the rest.
        let mut waves: [Vec<Action>; 3] = Default::default();
        for action in out.actions {
            let wave = if !action.kind().starts() {
                0
            } else if was_active.contains(action.uuid()) {
                1
            } else {
                2
            };
            waves[wave].push(action);
        }
        let sem = Arc::new(Semaphore::new(self.opts.parallel.max(1)));
        for wave in waves {
            let mut set = tokio::task::JoinSet::new();
            for action in wave {
                let (exec, view, sem) = (self.exec.clone(), view.clone(), sem.clone());
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    tracing::info!(app = action.uuid(), action = action.kind().verb(), task = action.task_id(), "executing");
                    let r = exec.execute(&action, &view).await.map_err(|e| format!("{e:#}"));
                    if let Err(e) = &r {
                        tracing::warn!(app = action.uuid(), action = action.kind().verb(), error = %e, "action failed");
                    }
                    (action, r)
                });
            }
            while let Some(joined) = set.join_next().await {
                let Ok((action, outcome)) = joined else {
                    continue;
                };
                record_outcome(
                    &mut self.history,
                    action.uuid(),
                    &action,
                    outcome,
                    now_ms(),
                    &self.opts.tunables,
                );
                // One decision, one transaction.
                self.persist_outcome(action.uuid());
            }
        }
        Ok((true, None))
    }

    /// Deletes images no app needs — neither the config in effect, nor what
    /// apps were last built from, nor the known-good config kept for
    /// rollback — once older than the grace period. Runs when the loop is
    /// idle, at most once per grace period.
    async fn collect_images(&mut self, cur: &Current) {
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
                if let Ok(p) = outpost_api::parse_device_config(&String::from_utf8_lossy(&cp.raw)) {
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

    /// Desired apps with the operator's local restart/purge counters added
    /// (EVE's local commands), so the planner sees them as counter changes.
    fn with_local_counters(&self, cur: &Current) -> Result<Vec<AppConfig>> {
        let mut out = Vec::with_capacity(cur.config.apps.len());
        for app in &cur.config.apps {
            let (restart, purge) = self.shared.store.local_counters(&app.uuid)?;
            let mut a = app.clone();
            a.restart_counter = a.restart_counter.wrapping_add(restart);
            a.purge_counter = a.purge_counter.wrapping_add(purge);
            out.push(a);
        }
        Ok(out)
    }

    async fn publish(
        &mut self,
        cur: &Current,
        desired: &[AppConfig],
        found: &[ObservedApp],
        updates: &[AppStatusUpdate],
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
            let obs = found.iter().find(|o| o.app_uuid == u.uuid);
            let vnc = match app {
                Some(a) => self.vnc_set(a).await,
                None => false,
            };
            let rec = self.history.apps.get(&u.uuid);
            let domain = obs.map(|o| DomainStatus {
                task_id: o.task_id.clone(),
                pid: o.task.as_ref().map(|t| t.pid).filter(|p| *p > 0),
                exit_code: o
                    .task
                    .as_ref()
                    .filter(|t| t.status == TaskStatus::Stopped)
                    .map(|t| t.exit_status),
                started_at: rec.and_then(|r| r.started_ms).and_then(|ms| {
                    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
                }),
                runtime: o.runtime.clone(),
                memory_limit_bytes: app.and_then(|a| a.resources.memory_kib.checked_mul(1024)),
                ips: self
                    .shared
                    .runtime
                    .app_ips(&o.task_id)
                    .unwrap_or_default()
                    .into_iter()
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
            };
            statuses.insert(u.uuid.clone(), status);
        }
        let changed = {
            let mut cur = self.shared.statuses.write().unwrap();
            let changed = *cur != statuses;
            *cur = statuses;
            changed
        };
        if changed {
            self.shared.status_changed.notify_one();
        }
    }

    /// Whether a VNC password is in effect (config, else the image label).
    async fn vnc_set(&mut self, app: &AppConfig) -> bool {
        if app.vnc.password.is_some() {
            return true;
        }
        if let Some(v) = self.vnc_by_image.get(&app.image) {
            return *v;
        }
        match outpost_runtime::image::resolve(self.shared.runtime.client(), &app.image).await {
            Ok(img) => {
                let set = outpost_runtime::spec::vnc_password(app, &img.config).is_some();
                self.vnc_by_image.insert(app.image.clone(), set);
                set
            }
            Err(_) => false,
        }
    }

    /// Promotes the applied config to known-good after a healthy window:
    /// every activated app RUNNING and none rejected.
    fn track_health(&mut self, cur: &Current, updates: &[AppStatusUpdate]) {
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
}

/// The planner's view of a container found in containerd.
pub fn to_observed(o: &ObservedApp) -> Observed {
    let purge_counter = o
        .volume_dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('#').nth(1))
        .and_then(|g| g.trim_end_matches(".container").parse().ok())
        .unwrap_or(0);
    let (phase, exit_status, pid) = match &o.task {
        None => (Phase::NoTask, None, None),
        Some(t) => {
            let phase = match t.status {
                TaskStatus::Created => Phase::Created,
                TaskStatus::Running => Phase::Running,
                TaskStatus::Pausing => Phase::Pausing,
                TaskStatus::Paused => Phase::Paused,
                TaskStatus::Stopped => Phase::Stopped,
                TaskStatus::Unknown => Phase::NoTask,
            };
            let exit = (t.status == TaskStatus::Stopped).then_some(t.exit_status);
            (phase, exit, (t.pid > 0).then_some(t.pid))
        }
    };
    Observed {
        task_id: o.task_id.clone(),
        uuid: o.app_uuid.clone(),
        version: o.version.clone(),
        app_num: o.app_num,
        purge_counter,
        phase,
        exit_status,
        pid,
    }
}
