//! The loop: observe (the runtime is the truth for what exists), plan
//! (pure), execute (bounded concurrency across apps, through a [`Driver`]),
//! persist the decisions, publish a [`Snapshot`], and sleep until something
//! happens — a task event, a config, an operator command, a finished
//! download, a backoff deadline, or the slow periodic resync.
//!
//! The loop owns the device's state. While a pass executes its actions it
//! keeps taking configs, commands and link updates (they mark the loop
//! dirty, so another pass follows at once), so an operator never waits for
//! a slow action of another app.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use outpost_api::AppConfig;
use outpost_reconcile::{
    bind, plan, record_failure_of, record_outcome, with_local_activate, with_local_counters,
    BindContext, Input, LocalActivate, LocalCounters, Observed, Waves,
};
use tokio::sync::Semaphore;

use super::driver::Driver;
use super::executor::Executed;
use super::snapshot::{Command, Current, Event};
use super::source::{check, ParsedConfig};

mod core;
mod events;
mod housekeeping;
mod networks;
mod options;
mod persist;
mod status;
mod unplaced;

#[cfg(test)]
mod tests;

pub use self::core::{Inputs, Reconciler};
pub use options::{now_ms, Clock, LoopOptions, SystemClock};

/// Between passes, progress of running downloads is republished this often.
const PROGRESS_TICK: Duration = Duration::from_millis(500);

impl<D: Driver> Reconciler<D> {
    /// Runs until `stop` resolves.
    pub async fn run(mut self, mut inputs: Inputs, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut busy_passes = 0u32;
        loop {
            self.dirty = false;
            let wake_at = match self.pass(&mut inputs).await {
                Ok((acted, wake)) => {
                    if (acted || self.dirty) && busy_passes < 8 {
                        // Re-observe right away: actions changed the world,
                        // or something arrived meanwhile.
                        busy_passes += 1;
                        continue;
                    }
                    wake
                }
                Err(e) => {
                    tracing::error!(error = %e, "reconcile pass failed; retrying");
                    Some(self.clock.now_ms() + 2000)
                }
            };
            if busy_passes > 0 {
                // A burst of work is over: give its freed heap back.
                super::heap::release_free_heap();
            }
            busy_passes = 0;
            if self.dirty {
                continue;
            }
            let until = wake_at
                .map(|w| Duration::from_millis(w.saturating_sub(self.clock.now_ms())))
                .unwrap_or(self.opts.resync)
                .min(self.opts.resync);
            let deadline = tokio::time::Instant::now() + until;
            // Whatever wakes the loop, a pass follows — but link updates and
            // download progress only refresh the snapshot.
            loop {
                let tick = if self.exec.downloads.busy() {
                    PROGRESS_TICK
                } else {
                    until
                };
                tokio::select! {
                    _ = &mut stop => return,
                    Some(doc) = inputs.configs.recv() => {
                        self.take_config(doc);
                        break;
                    }
                    Some(ev) = inputs.events.recv() => {
                        self.handle(ev).await;
                        break;
                    }
                    Some(ev) = events::next_task_event(&mut inputs.tasks) => {
                        tracing::debug!(?ev, "task event");
                        break;
                    }
                    Ok(()) = inputs.link.changed() => {
                        self.link = inputs.link.borrow_and_update().clone();
                        self.publish_snapshot();
                    }
                    _ = self.exec.wake.notified() => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = tokio::time::sleep(tick) => self.publish_snapshot(),
                }
            }
        }
    }

    /// Accepts or refuses a document, parsed off the loop (a refused one
    /// leaves the config in effect).
    pub fn take_config(&mut self, doc: ParsedConfig) {
        self.counters.configs_evaluated += 1;
        let ParsedConfig { raw, parsed } = doc;
        match parsed.and_then(|p| check(&raw, p, self.current.as_deref())) {
            Ok(next) => {
                for r in &next.rejected {
                    tracing::warn!(origin = %next.origin, "{}", r.summary());
                }
                if let Err(e) = self.store.save_applied_config(
                    &raw.bytes,
                    next.config.generation,
                    self.clock.now_ms(),
                ) {
                    tracing::error!(error = %e, "checkpointing the config failed; applying it anyway");
                }
                tracing::info!(origin = %next.origin, generation = next.config.generation, apps = next.config.apps.len(), rejected = next.rejected.len(), "config accepted");
                self.health.config_changed();
                self.current = Some(Arc::new(next));
                self.config_error = None;
            }
            Err(e) => {
                tracing::error!("{e}; the config in effect keeps running");
                self.config_error = Some(e.to_string());
            }
        }
        self.dirty = true;
        self.publish_snapshot();
    }

    /// Handles an event from the admin API or the link.
    async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Command(Command::Activate {
                uuid,
                activate,
                reply,
            }) => {
                let _ = reply.send(self.override_activate(&uuid, activate));
            }
            Event::Command(Command::Pause { uuid, pause, reply }) => {
                let _ = reply.send(self.pause(&uuid, pause).await);
            }
            Event::Command(Command::Bump { uuid, kind, reply }) => {
                let r = self.store.bump_local_counter(&uuid, kind);
                match &r {
                    Ok(v) => {
                        tracing::info!(app = %uuid, ?kind, counter = v, "local counter bumped by operator")
                    }
                    Err(e) => tracing::error!(app = %uuid, error = %e, "bumping a local counter"),
                }
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Event::Refused(why) => {
                self.counters.configs_evaluated += 1;
                self.config_error = Some(why);
                self.publish_snapshot();
            }
            Event::InstanceUp => self.counters.instance_restarts += 1,
        }
        self.dirty = true;
    }

    /// Records the operator's local activate override of app `uuid` for
    /// the config generation in effect (saved before the answer).
    fn override_activate(&mut self, uuid: &str, activate: bool) -> Result<u64, String> {
        let generation = self
            .current
            .as_ref()
            .filter(|c| c.config.apps.iter().any(|a| a.uuid == uuid))
            .map(|c| c.config.generation)
            .ok_or_else(|| format!("app {uuid} is not in the config in effect"))?;
        let rec = self.history.apps.entry(uuid.to_owned()).or_default();
        rec.local_activate = Some(LocalActivate {
            activate,
            generation,
        });
        self.persist_outcomes(&[uuid.to_owned()]);
        if let Some(u) = self.unsaved.get(uuid) {
            return Err(format!("saving the override failed: {}", u.error));
        }
        let verb = if activate { "start" } else { "stop" };
        tracing::info!(app = %uuid, generation, "local {verb} by operator");
        Ok(generation)
    }

    /// Pauses or resumes app `uuid`'s task (the planner leaves a paused
    /// task as it is: a pause is an operator's choice).
    async fn pause(&mut self, uuid: &str, pause: bool) -> Result<String, String> {
        let verb = if pause { "pause" } else { "resume" };
        let task = self
            .statuses
            .get(uuid)
            .and_then(|s| s.domain.as_ref())
            .map(|d| d.task_id.clone())
            .ok_or_else(|| format!("app {uuid} has no task to {verb}"))?;
        let d = &self.exec.driver;
        let r = if pause {
            d.pause(&task).await
        } else {
            d.resume(&task).await
        };
        match &r {
            Ok(()) => tracing::info!(app = %uuid, task = %task, "{verb} by operator"),
            Err(e) => tracing::warn!(app = %uuid, error = %e, "{verb} failed"),
        }
        r.map(|()| task).map_err(|e| e.to_string())
    }

    /// One observe → plan → execute round. Returns whether anything was
    /// done (an action that only waits for its image download is not) and
    /// when the planner wants to be woken. Never waits for a download.
    pub(crate) async fn pass(
        &mut self,
        inputs: &mut Inputs,
    ) -> anyhow::Result<(bool, Option<u64>)> {
        let evaluated = self.counters.configs_evaluated;
        let Some(cur) = self.current.clone() else {
            self.pass_idle(evaluated);
            return Ok((false, None));
        };
        let desired = self.desired_with_local_counters(&cur)?;
        let (desired, expired) =
            with_local_activate(&desired, &self.history, cur.config.generation);
        if !expired.is_empty() {
            for uuid in &expired {
                if let Some(r) = self.history.apps.get_mut(uuid) {
                    r.local_activate = None;
                }
                tracing::info!(app = %uuid, "local stop/start override ended by a newer config");
            }
            self.persist_outcomes(&expired);
        }
        let found = self.exec.driver.observe().await?;
        let observed: Vec<Observed> = found.iter().map(|f| f.app.clone()).collect();
        let now = self.clock.now_ms();
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
        self.show_unsaved(&mut out.statuses, |uuid| display_name(&cur, &desired, uuid));
        self.publish(&cur, &desired, &found, &out.statuses, &out.actions)
            .await;
        self.track_health(&cur, &out.statuses);
        self.converge_networks(&cur.config.networks, &self.live_tasks(&desired, &found))
            .await;
        // Downloads only for images some app is to be built from.
        let wanted: BTreeSet<&str> = desired
            .iter()
            .map(|a| {
                self.history
                    .config_to_apply(&a.uuid)
                    .map_or(a.image.as_str(), |c| c.image.as_str())
            })
            .collect();
        self.exec.downloads.retain_wanted(&wanted);
        if out.actions.is_empty() {
            self.collect_images(&cur).await;
            self.pass_idle(evaluated);
            return Ok((false, out.wake_at_ms));
        }
        // Actions get their data (what to build from is the planner's
        // choice: it can differ from the document, e.g. an image change
        // still waiting for its purge counter).
        let cx = BindContext {
            desired: &desired,
            networks: &cur.config.networks,
            registries: &cur.config.registries,
            generation: cur.config.generation,
            history: &self.history,
        };
        let mut jobs = Vec::new();
        for action in out.actions {
            match bind(action, &cx) {
                Ok(job) => jobs.push(job),
                Err(e) => tracing::error!("{e}"),
            }
        }
        // Waves: teardown first, then the apps that were running before
        // (after a reboot they come back first), then the rest.
        let waves = Waves::split(jobs, &before_plan, |j| &j.action).in_order();
        drop(before_plan);
        let acted = self.execute_waves(waves, inputs).await;
        Ok((acted, out.wake_at_ms))
    }

    fn pass_idle(&mut self, evaluated_at_start: u64) {
        let idle = self
            .counters
            .idle_through
            .map_or(evaluated_at_start, |i| i.max(evaluated_at_start));
        if self.counters.idle_through != Some(idle) {
            self.counters.idle_through = Some(idle);
            self.publish_snapshot();
        }
    }

    /// Runs the waves in order, each with bounded concurrency, recording
    /// every outcome as it comes; meanwhile configs, commands and link
    /// updates are taken (and make the loop pass again).
    async fn execute_waves(
        &mut self,
        waves: [Vec<outpost_reconcile::Job>; 3],
        inputs: &mut Inputs,
    ) -> bool {
        let sem = Arc::new(Semaphore::new(self.opts.parallel.max(1)));
        let mut acted = false;
        for wave in waves {
            let mut set = tokio::task::JoinSet::new();
            for job in wave {
                let (exec, sem) = (self.exec.clone(), sem.clone());
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    let r = exec.execute(&job).await;
                    (job, r)
                });
            }
            loop {
                let joined = tokio::select! {
                    j = set.join_next() => match j {
                        Some(j) => j,
                        None => break,
                    },
                    Some(doc) = inputs.configs.recv() => { self.take_config(doc); continue; }
                    Some(ev) = inputs.events.recv() => { self.handle(ev).await; continue; }
                    Some(_) = events::next_task_event(&mut inputs.tasks) => { self.dirty = true; continue; }
                    Ok(()) = inputs.link.changed() => {
                        self.link = inputs.link.borrow_and_update().clone();
                        self.publish_snapshot();
                        continue;
                    }
                };
                // Outcomes that arrived together are recorded and saved
                // together (one transaction).
                let mut done = vec![joined];
                while let Some(j) = set.try_join_next() {
                    done.push(j);
                }
                let mut recorded = Vec::new();
                for (job, outcome) in done.into_iter().flatten() {
                    // Waiting for an image is no outcome: no backoff, no
                    // change; the download wakes the loop when it ends.
                    let now = self.clock.now_ms();
                    let (t, uuid) = (&self.opts.tunables, job.action.uuid());
                    match outcome {
                        Ok(Executed::WaitingForImage) => continue,
                        Ok(Executed::Done) => {
                            record_outcome(&mut self.history, uuid, &job.action, Ok(()), now, t)
                        }
                        Err(e) => {
                            let failure = e.to_failure();
                            record_failure_of(
                                &mut self.history,
                                uuid,
                                &job.action,
                                &failure,
                                now,
                                t,
                            );
                        }
                    }
                    recorded.push(uuid.to_owned());
                }
                if !recorded.is_empty() {
                    acted = true;
                    self.persist_outcomes(&recorded);
                }
            }
        }
        // Apps that now wait for a download show it at once.
        self.publish_snapshot();
        acted
    }

    /// Tasks that exist or are about to: network instances stay while one
    /// of them uses them.
    fn live_tasks(
        &self,
        desired: &[AppConfig],
        found: &[super::driver::Found],
    ) -> BTreeSet<String> {
        found
            .iter()
            .map(|o| o.app.task_id.clone())
            .chain(desired.iter().filter(|a| a.activate).flat_map(|a| {
                let planned = self
                    .history
                    .config_to_apply(&a.uuid)
                    .map(AppConfig::task_id);
                std::iter::once(a.task_id()).chain(planned)
            }))
            .collect()
    }

    /// Desired apps with the operator's local restart/purge counters (read
    /// from the store) added, so the planner sees them as counter changes.
    fn desired_with_local_counters(&self, cur: &Current) -> anyhow::Result<Vec<AppConfig>> {
        let mut local = BTreeMap::new();
        for app in &cur.config.apps {
            let (restart, purge) = self.store.local_counters(&app.uuid)?;
            local.insert(app.uuid.clone(), LocalCounters { restart, purge });
        }
        Ok(with_local_counters(&cur.config.apps, &local))
    }
}

/// An app's display name, from the config or its rejected entry.
fn display_name(cur: &Current, desired: &[AppConfig], uuid: &str) -> Option<String> {
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
}
