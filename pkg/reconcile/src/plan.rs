//! `plan`: desired config + observed containers + history + now → actions,
//! updated history, statuses and the next wake-up time.

use std::collections::{BTreeMap, BTreeSet};

use outpost_api::{AppConfig, RejectedApp, SwState};

use crate::action::{Action, ActionKind};
use crate::decide::desired_app;
use crate::history::{AppRecord, ErrorKind, History};
use crate::observed::{pick_current, Observed};
use crate::policy::Tunables;
use crate::severity::{set_error, Level, NewError};
use crate::status::AppStatusUpdate;

/// Everything a plan depends on; `now_ms` is the injected clock (Unix ms).
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// The valid apps of the desired config, in config order.
    pub desired: &'a [AppConfig],
    /// Config entries that could not be applied.
    pub rejected: &'a [RejectedApp],
    /// The containers that exist, as the runtime reports them.
    pub observed: &'a [Observed],
    /// Decisions of earlier plans, as persisted.
    pub history: &'a History,
    /// Current time, Unix milliseconds.
    pub now_ms: u64,
    /// Restart-policy timing.
    pub policy: Tunables,
}

/// What to do now, and what to remember and report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Steps in order: teardown (removals, halts) first, then starts of apps
    /// that were active before, then the other starts.
    pub actions: Vec<Action>,
    /// The records to persist before carrying out the actions.
    pub history: History,
    /// One status per desired app (config order), then one per rejected app
    /// with a readable UUID that is not also desired.
    pub statuses: Vec<AppStatusUpdate>,
    /// Earliest pending backoff end: plan again then, even without events.
    pub wake_at_ms: Option<u64>,
    /// Outpost addition: device-level notes, e.g. removals held back because
    /// a rejected entry has no readable UUID.
    pub warnings: Vec<String>,
}

/// Decides what to do to bring the device towards `input.desired`.
///
/// Pure: the same input always gives the same plan.
pub fn plan(input: &Input) -> Plan {
    let now = input.now_ms;
    let mut history = input.history.clone();
    let mut teardown = Vec::new();
    let mut first = Vec::new();
    let mut later = Vec::new();
    let mut statuses = Vec::new();
    let mut wakes = Vec::new();
    let mut warnings = Vec::new();

    let by_uuid = group(input.observed);
    let desired: BTreeSet<&str> = input.desired.iter().map(|a| a.uuid.as_str()).collect();
    let mut rejected: BTreeMap<&str, &RejectedApp> = BTreeMap::new();
    for r in input.rejected {
        if let Some(u) = &r.uuid {
            rejected.entry(u.as_str()).or_insert(r);
        }
    }

    for app in input.desired {
        let mine = by_uuid.get(app.uuid.as_str()).cloned().unwrap_or_default();
        let rec = history.apps.entry(app.uuid.clone()).or_default();
        let was_active = rec.was_active;
        let mut d = desired_app(app, &mine, rec, now, &input.policy);
        if let Some(r) = rejected.get(app.uuid.as_str()) {
            let dup = format!(
                "another config entry with this UUID was rejected: {}",
                r.summary()
            );
            d.status.note = Some(match d.status.note.take() {
                Some(n) => format!("{n}; {dup}"),
                None => dup,
            });
        }
        teardown.extend(d.halts);
        match d.start {
            Some(a) if was_active => first.push(a),
            Some(a) => later.push(a),
            None => {}
        }
        statuses.push(d.status);
        wakes.extend(d.wake_at_ms);
    }

    for (uuid, r) in &rejected {
        if desired.contains(uuid) {
            continue;
        }
        let mine = by_uuid.get(uuid).cloned().unwrap_or_default();
        statuses.push(rejected_status(uuid, r, &mine, &mut history, now));
    }

    let blind = input.rejected.iter().any(|r| r.uuid.is_none());
    let keep = |u: &str| desired.contains(u) || rejected.contains_key(u);
    let mut remove = |uuid: &str, task_id: String, purge_counter: u64, history: &History| {
        if blind {
            warnings.push(format!(
                "not removing app {uuid} (task {task_id}): a rejected config entry has no \
                 readable UUID and may be this app"
            ));
            return;
        }
        let rec = history.get(uuid);
        let retrying = rec.is_some_and(|r| r.retry_of == Some(ActionKind::Remove));
        match rec
            .and_then(|r| r.next_start_ms)
            .filter(|at| retrying && *at > now)
        {
            Some(at) => wakes.push(at),
            None => teardown.push(Action::Remove {
                uuid: uuid.to_owned(),
                task_id,
                purge_counter,
            }),
        }
    };
    for o in input.observed.iter().filter(|o| !keep(&o.uuid)) {
        remove(&o.uuid, o.task_id.clone(), o.purge_counter, &history);
    }
    // Apps that left the config while no container existed (halted, or a
    // creation that failed early) may still have volumes on disk.
    let gone: Vec<String> = history
        .apps
        .keys()
        .filter(|u| !keep(u) && !by_uuid.contains_key(u.as_str()))
        .cloned()
        .collect();
    for uuid in gone {
        let leftover = history.apps[&uuid]
            .config_to_apply()
            .map(|c| (c.task_id(), c.purge_counter));
        match leftover {
            Some((task_id, purge_counter)) => remove(&uuid, task_id, purge_counter, &history),
            None => {
                history.apps.remove(&uuid);
            }
        }
    }

    let mut actions = teardown;
    actions.append(&mut first);
    actions.append(&mut later);
    Plan {
        actions,
        history,
        statuses,
        wake_at_ms: wakes.into_iter().min(),
        warnings,
    }
}

/// The observed containers by app UUID, in the order reported.
fn group(observed: &[Observed]) -> BTreeMap<&str, Vec<&Observed>> {
    let mut map: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for o in observed {
        map.entry(o.uuid.as_str()).or_default().push(o);
    }
    map
}

/// A rejected app is left exactly as it is; its status carries the
/// rejection as an error.
fn rejected_status(
    uuid: &str,
    r: &RejectedApp,
    mine: &[&Observed],
    history: &mut History,
    now_ms: u64,
) -> AppStatusUpdate {
    let rec: &mut AppRecord = history.apps.entry(uuid.to_owned()).or_default();
    let new = NewError {
        kind: ErrorKind::Rejected,
        message: r.summary(),
        retries: 0,
        retry_condition: "a corrected config entry",
        level: Level::Terminal,
    };
    set_error(rec, new, now_ms);
    let (cur, _) = pick_current("", mine);
    AppStatusUpdate {
        uuid: uuid.to_owned(),
        state: cur.map_or(SwState::Unknown, Observed::state),
        error: rec.error.clone(),
        backoff: None,
        restarts: rec.restarts,
        note: None,
    }
}
