//! The loop: observe (containerd is the truth for what exists), plan (pure),
//! execute (bounded concurrency across apps), persist the decisions, and
//! sleep until something happens — a task event, a config, an operator
//! command, a backoff deadline, or the slow periodic resync.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use outpost_api::{AppConfig, NetworkConfig};
use outpost_reconcile::{
    plan, record_outcome, record_permanent_failure, with_local_counters, HealthTracker, History,
    Input, LocalCounters, Observed, Phase, Tunables, Waves,
};
use outpost_runtime::events::EventStream;
use outpost_runtime::pull::ErrorClass;
use outpost_runtime::task::TaskStatus;
use outpost_runtime::ObservedApp;
use tokio::sync::{mpsc, Semaphore};

use super::downloads::Failure;
use super::executor::{Executed, Executor, PassView};
use super::source::{check, ParsedConfig};
use super::state::{Current, Shared};

mod housekeeping;
mod networks;
mod persist;
mod status;
mod unplaced;

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
    health: HealthTracker,
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
            health: HealthTracker::default(),
            vnc_by_image: HashMap::new(),
            last_gc: None,
            ensured_networks: HashMap::new(),
            unsaved: BTreeMap::new(),
        })
    }

    /// Runs until `stop` resolves.
    pub async fn run(
        mut self,
        mut configs: mpsc::Receiver<ParsedConfig>,
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
                Some(doc) = configs.recv() => {
                    self.take_config(doc);
                }
                Some(ev) = events.rx.recv() => tracing::debug!(?ev, "task event"),
                _ = self.shared.kick.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Accepts or refuses a document, parsed off the loop (a refused one
    /// leaves the config in effect).
    pub fn take_config(&mut self, doc: ParsedConfig) {
        self.shared.progress.config_evaluated();
        let ParsedConfig { raw, parsed } = doc;
        let current = self.shared.current.read().unwrap().clone();
        match parsed.and_then(|p| check(&raw, p, current.as_ref())) {
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
                self.health.config_changed();
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
    /// done (an action that only waits for its image download is not) and
    /// when the planner wants to be woken. Never waits for a download.
    async fn pass(&mut self) -> Result<(bool, Option<u64>)> {
        let evaluated = self.shared.progress.evaluated();
        let Some(cur) = self.shared.current.read().unwrap().clone() else {
            self.shared.progress.pass_idle(evaluated);
            return Ok((false, None));
        };
        let desired = self.desired_with_local_counters(&cur)?;
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
        // An app whose decision could not be saved keeps its old record and
        // waits; the others go on.
        let held = self.persist(&mut out.history);
        // The history before this plan orders the waves (who was active).
        let before_plan = std::mem::replace(&mut self.history, out.history);
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
        self.publish(&cur, &desired, &found, &out.statuses, &out.actions)
            .await;
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
        // Downloads only for images some app is to be built from.
        let wanted: BTreeSet<&str> = desired
            .iter()
            .map(|a| {
                self.history
                    .config_to_apply(&a.uuid)
                    .map_or(a.image.as_str(), |c| c.image.as_str())
            })
            .collect();
        self.shared.downloads.retain_wanted(&wanted);
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
        let waves = Waves::new(out.actions, &before_plan).in_order();
        drop(before_plan);
        let sem = Arc::new(Semaphore::new(self.opts.parallel.max(1)));
        let mut acted = false;
        for wave in waves {
            let mut set = tokio::task::JoinSet::new();
            for action in wave {
                let (exec, view, sem) = (self.exec.clone(), view.clone(), sem.clone());
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    tracing::info!(app = action.uuid(), action = action.kind().verb(), task = action.task_id(), "executing");
                    let r = exec.execute(&action, &view).await;
                    match &r {
                        Ok(Executed::WaitingForImage) => tracing::info!(app = action.uuid(), action = action.kind().verb(), "waiting for its image"),
                        Ok(Executed::Done) => {}
                        Err(e) => tracing::warn!(app = action.uuid(), action = action.kind().verb(), error = %format!("{e:#}"), "action failed"),
                    }
                    (action, r)
                });
            }
            while let Some(joined) = set.join_next().await {
                let Ok((action, outcome)) = joined else {
                    continue;
                };
                // Waiting for an image is no outcome: no backoff, no
                // change; the download wakes the loop when it ends.
                let now = now_ms();
                let t = &self.opts.tunables;
                match outcome {
                    Ok(Executed::WaitingForImage) => continue,
                    Ok(Executed::Done) => {
                        record_outcome(&mut self.history, action.uuid(), &action, Ok(()), now, t)
                    }
                    Err(e) => {
                        let reason = format!("{e:#}");
                        let permanent = e
                            .downcast_ref::<Failure>()
                            .is_some_and(|f| f.class == ErrorClass::Permanent);
                        if permanent {
                            record_permanent_failure(
                                &mut self.history,
                                action.uuid(),
                                &action,
                                &reason,
                                now,
                                t,
                            );
                        } else {
                            record_outcome(
                                &mut self.history,
                                action.uuid(),
                                &action,
                                Err(reason),
                                now,
                                t,
                            );
                        }
                    }
                }
                acted = true;
                // One decision, one transaction.
                self.persist_outcome(action.uuid());
            }
        }
        Ok((acted, out.wake_at_ms))
    }

    /// Desired apps with the operator's local restart/purge counters (read
    /// from the store) added, so the planner sees them as counter changes.
    fn desired_with_local_counters(&self, cur: &Current) -> Result<Vec<AppConfig>> {
        let mut local = BTreeMap::new();
        for app in &cur.config.apps {
            let (restart, purge) = self.shared.store.local_counters(&app.uuid)?;
            local.insert(app.uuid.clone(), LocalCounters { restart, purge });
        }
        Ok(with_local_counters(&cur.config.apps, &local))
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
