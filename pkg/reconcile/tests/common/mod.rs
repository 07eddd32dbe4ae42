//! A simulated device for the planner's tests: desired config, containers,
//! volumes and history, an injected clock, and an executor that carries out
//! actions on them the way the agent does (then calls `record_outcome`).
#![allow(dead_code)]

use std::collections::BTreeSet;

use outpost_api::{AppConfig, RejectedApp, SwState};
use outpost_reconcile::{
    plan, record_outcome, Action, AppRecord, AppStatusUpdate, History, Input, Observed, Phase,
    Plan, Tunables,
};

/// Start of every test's clock (2023-11-14T22:13:20Z).
pub const T0: u64 = 1_700_000_000_000;
/// One second in ms.
pub const SEC: u64 = 1_000;
/// One minute in ms.
pub const MIN: u64 = 60 * SEC;
/// One hour in ms.
pub const HOUR: u64 = 60 * MIN;

/// UUID of test app `n`.
pub fn uuid(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// A valid app `n` with one data volume, `restart_policy` default (always, 10).
pub fn app(n: u32) -> AppConfig {
    serde_json::from_value(serde_json::json!({
        "uuid": uuid(n),
        "version": "1",
        "display_name": format!("app{n}"),
        "app_num": n,
        "image": "hello:1",
        "volumes": [{"uuid": format!("11111111-0000-4000-8000-{n:012}"), "name": "data", "mount_dir": "/data"}],
    }))
    .unwrap()
}

/// A container of `cfg` in `phase`.
pub fn container(cfg: &AppConfig, phase: Phase) -> Observed {
    Observed {
        task_id: cfg.task_id(),
        uuid: cfg.uuid.clone(),
        version: cfg.version.clone(),
        app_num: cfg.app_num,
        purge_counter: cfg.purge_counter,
        phase,
        exit_status: None,
        pid: (phase == Phase::Running).then_some(4242),
    }
}

/// The simulated device.
#[derive(Clone, Debug)]
pub struct World {
    pub desired: Vec<AppConfig>,
    pub rejected: Vec<RejectedApp>,
    pub observed: Vec<Observed>,
    /// Container volumes on disk: (app UUID, generation).
    pub volumes: BTreeSet<(String, u64)>,
    pub history: History,
    pub now: u64,
    pub tunables: Tunables,
    /// Every action carried out, in order.
    pub log: Vec<Action>,
}

impl World {
    /// A device with nothing on it yet and `desired` as its config.
    pub fn new(desired: Vec<AppConfig>) -> Self {
        World {
            desired,
            rejected: Vec::new(),
            observed: Vec::new(),
            volumes: BTreeSet::new(),
            history: History::default(),
            now: T0,
            tunables: Tunables::default(),
            log: Vec::new(),
        }
    }

    /// A device where `desired` was applied and everything runs.
    pub fn running(desired: Vec<AppConfig>) -> Self {
        let mut w = World::new(desired);
        w.converge();
        w
    }

    /// Plans without changing anything.
    pub fn plan(&self) -> Plan {
        plan(&Input {
            desired: &self.desired,
            rejected: &self.rejected,
            observed: &self.observed,
            history: &self.history,
            now_ms: self.now,
            policy: self.tunables,
        })
    }

    /// Plans, persists the plan's history, carries out every action
    /// successfully, and returns the plan.
    pub fn step(&mut self) -> Plan {
        self.step_with(|_| Ok(()))
    }

    /// Like [`World::step`], with each action's outcome chosen by `outcome`
    /// (a failed action changes nothing on the device).
    pub fn step_with(&mut self, outcome: impl Fn(&Action) -> Result<(), String>) -> Plan {
        let p = self.plan();
        self.history = p.history.clone();
        for a in &p.actions {
            let result = outcome(a);
            if result.is_ok() {
                self.execute(a);
            }
            record_outcome(
                &mut self.history,
                a.uuid(),
                a,
                result,
                self.now,
                &self.tunables,
            );
            self.log.push(a.clone());
        }
        p
    }

    /// Plans, persists the plan's history and carries out the actions, then
    /// dies before recording any outcome (an agent crash).
    pub fn step_unrecorded(&mut self) -> Plan {
        let p = self.plan();
        self.history = p.history.clone();
        for a in &p.actions {
            self.execute(a);
            self.log.push(a.clone());
        }
        p
    }

    /// Steps until a plan has no actions; returns the actions carried out.
    pub fn converge(&mut self) -> Vec<Action> {
        let mut done = Vec::new();
        for _ in 0..10 {
            let p = self.step();
            if p.actions.is_empty() {
                return done;
            }
            done.extend(p.actions);
        }
        panic!("no convergence after 10 plans: {done:#?}");
    }

    fn execute(&mut self, a: &Action) {
        let create = |w: &mut World, uuid: &str| {
            let cfg = w
                .history
                .config_to_apply(uuid)
                .expect("config to apply")
                .clone();
            w.observed.retain(|o| o.task_id != cfg.task_id());
            w.observed.push(container(&cfg, Phase::Running));
            w.volumes.insert((uuid.to_owned(), cfg.purge_counter));
        };
        match a {
            Action::Create { uuid } => create(self, uuid),
            Action::Start { task_id, .. } | Action::Restart { task_id, .. } => {
                let o = self.task_mut(task_id);
                o.phase = Phase::Running;
                o.exit_status = None;
                o.pid = Some(4243);
            }
            Action::Halt { task_id, .. } => self.observed.retain(|o| &o.task_id != task_id),
            Action::Replace { uuid, old_task_id } => {
                self.observed.retain(|o| &o.task_id != old_task_id);
                create(self, uuid);
            }
            Action::Purge {
                uuid,
                task_id,
                old_purge_counter,
            } => {
                self.observed
                    .retain(|o| Some(&o.task_id) != task_id.as_ref());
                self.volumes.remove(&(uuid.clone(), *old_purge_counter));
                create(self, uuid);
            }
            Action::Remove { uuid, task_id, .. } => {
                self.observed.retain(|o| &o.task_id != task_id);
                self.volumes.retain(|(u, _)| u != uuid);
            }
        }
    }

    fn task_mut(&mut self, task_id: &str) -> &mut Observed {
        self.observed
            .iter_mut()
            .find(|o| o.task_id == task_id)
            .unwrap_or_else(|| panic!("no container {task_id}"))
    }

    /// The container of app `n` (the first, if several).
    pub fn obs(&mut self, n: u32) -> &mut Observed {
        let u = uuid(n);
        self.observed
            .iter_mut()
            .find(|o| o.uuid == u)
            .unwrap_or_else(|| panic!("app {n} has no container"))
    }

    /// App `n`'s task exits with `code`.
    pub fn exit(&mut self, n: u32, code: u32) {
        let o = self.obs(n);
        o.phase = Phase::Stopped;
        o.exit_status = Some(code);
        o.pid = None;
    }

    /// The device reboots (which takes a minute): every container loses its task.
    pub fn reboot(&mut self) {
        self.advance(MIN);
        for o in &mut self.observed {
            o.phase = Phase::NoTask;
            o.exit_status = None;
            o.pid = None;
        }
    }

    /// Moves the clock.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// The desired config of app `n`, to edit.
    pub fn cfg(&mut self, n: u32) -> &mut AppConfig {
        let u = uuid(n);
        self.desired.iter_mut().find(|a| a.uuid == u).unwrap()
    }

    /// App `n`'s record.
    pub fn rec(&self, n: u32) -> &AppRecord {
        &self.history.apps[&uuid(n)]
    }
}

/// App `n`'s status in `plan`.
pub fn status(plan: &Plan, n: u32) -> &AppStatusUpdate {
    let u = uuid(n);
    plan.statuses
        .iter()
        .find(|s| s.uuid == u)
        .unwrap_or_else(|| panic!("no status for app {n}: {:#?}", plan.statuses))
}

/// State of app `n` in `plan`.
pub fn state(plan: &Plan, n: u32) -> SwState {
    status(plan, n).state
}

/// Short names of a plan's actions, e.g. `["create 1", "halt 2"]`.
pub fn names(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| {
            let n = a.uuid().rsplit('-').next().unwrap().trim_start_matches('0');
            format!("{} {n}", a.kind().verb())
        })
        .collect()
}
