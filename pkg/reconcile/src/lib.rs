//! Outpost's planner: a pure function from the desired config, the
//! containers that exist and the history of past decisions to the actions
//! that bring the device towards the config (EVE pillar's zedmanager and
//! domainmgr decisions, without their I/O).
//!
//! ```text
//! observe ──► plan(Input { desired, rejected, observed, history, now_ms, policy })
//!               │  Plan { actions, history, statuses, wake_at_ms }
//!               ▼
//!  persist plan.history ──► for each action: execute, record_outcome(), persist
//!               └──────────► observe again; stop when the plan has no actions
//! ```
//!
//! No clock, no I/O: `now_ms` is passed in, so every rule is tested with
//! plain values (`tests/`).
//!
//! # Rules (EVE §6, with Outpost's improvements)
//!
//! * **activate** false halts every container of the app and keeps its
//!   volumes; status HALTING while a container remains, HALTED after. True
//!   again creates it (restart-class changes made meanwhile apply).
//! * **restart_counter**: any change (≠, not only >) against the applied
//!   config restarts the app on the same container volume: `Restart` when
//!   the spec stays, `Replace` when the change brings a new spec or task ID.
//! * **purge_counter**: any change against the container's volume generation
//!   purges (new volume generation) and supersedes a restart. It is compared
//!   with the applied config when no container exists, so a purge requested
//!   while the device was off happens at boot. For an inactive app the purge
//!   waits until it is activated.
//! * **Changes that need a counter** are held back, the app is left as it
//!   is, and its status carries an error naming the fields and the counter:
//!   resources, env (keys only), runtime and VNC need restart_counter; image
//!   and volumes need purge_counter. A restart applies the restart-class
//!   changes and keeps the "needs purge" error; a purge applies everything.
//!   **Interfaces** follow EVE: applied at the next restart (restart_counter
//!   or purge_counter change, through a new container); a change of
//!   interfaces alone is a staged change, reported with severity notice
//!   that does not escalate.
//! * **Network instances** ([`plan_networks`]): every configured instance is
//!   set up before the apps' actions; an owned instance that is neither
//!   configured nor used by a live task is removed; attachments whose task
//!   is gone are freed first.
//! * **Version / app number** (the task ID): *decision* — as in EVE, new
//!   versions are applied through the counters. A restart_counter change with
//!   a new task ID is a `Replace` (same volume), a purge_counter change a
//!   `Purge`; without a counter change the old container keeps running and
//!   the status *note* (not an error: controllers bump the version for
//!   cosmetic edits too) says the version waits for a counter change.
//!   **Image** changes need purge_counter, as in EVE, because the image is
//!   the content of the container volume: a `Replace` or `Restart` keeps the
//!   old image (and the "needs purge" error stays).
//! * **Create / Remove**: a desired app without container is created; apps
//!   whose record says `was_active` start first. A container (or a record
//!   with volumes) of an app that is neither desired nor rejected is
//!   removed. A rejected app is left alone and its status carries the
//!   rejection (severity error). *Decision*: while any rejected entry has no
//!   readable UUID, nothing is removed (it could be any app); `Plan::warnings`
//!   says so.
//! * **Restart policy** on a stopped task: `always` restarts, `on-failure`
//!   restarts after a non-zero (or unknown) exit, `never` leaves it (exit 0
//!   HALTED, else BROKEN "task broke with exit status N"). Restarts wait
//!   10 s doubling to 5 min; `attempts` resets after a run of 10 min; a run
//!   that fails with `attempts == max_attempts` (0 = unlimited) makes the app
//!   FAILED until the config changes in any way (counters included), it is
//!   deactivated, or it is found running. While waiting, status shows
//!   `BackoffStatus` and `wake_at_ms` says when to plan again (also when a
//!   run on probation becomes healthy, so its backoff leaves the status).
//!   Exit 0 under `always` is restarted with the same backoff but reported
//!   as a note, not an error.
//! * **A missing task** (NoTask: after a reboot, or the shim died) is
//!   recreated with `Restart` at once and is not counted by the policy (the
//!   executor must therefore not delete stopped tasks itself). *Decision*: a
//!   task that disappears within `backoff_initial_ms` of its start counts as
//!   a failed run whatever the mode, so a shim that keeps dying backs off
//!   instead of looping (a reboot always takes longer than that).
//! * **Errors** escalate with `Severity::escalated(retries, age)`;
//!   `first_seen` is kept while the same kind of condition lasts (action
//!   failures, task exits in one crash loop, pending changes) and the error
//!   is cleared on success (a successful action, a healthy run, the change
//!   applied). Conditions only an operator can end (FAILED, BROKEN under
//!   `never`, a rejected entry) are severity error at once. Failed actions
//!   retry with the same backoff, forever (`max_attempts` counts runs that
//!   ended, not starts that never happened); a retry of the same step waits
//!   for its backoff, while a new decision (other counter, other config)
//!   acts at once.
//! * **States**: the observed task's state (EVE's table), except BOOTING for
//!   an app being created from nothing, BROKEN for one whose creation failed
//!   and waits, HALTING/HALTED for inactive apps, FAILED when the policy gave
//!   up. PAUSED is left alone: a pause is an operator's choice.
//! * **Ordering**: teardown (removals, halts) comes first so it frees
//!   memory and CPUs for what starts (it is quick after a reboot, where no
//!   task survives); then the starts of previously active apps, then the rest,
//!   each group in config order.
//!
//! # The loop's other decisions
//!
//! Also pure, for the agent to call around `plan`: [`with_local_counters`]
//! (the operator's local commands as counter changes), [`Waves`] (the
//! order actions run in), [`keep_removed_visible`] (HALTING until a removed
//! app is gone), [`HealthTracker`] (known-good promotion) and
//! [`images_to_keep`] (the image GC's keep set).
//!
//! # What the executor must know
//!
//! `Create`, `Replace` and `Purge` build the container from
//! [`History::config_to_apply`] of `plan.history` (the desired config with
//! the held-back image and volume changes left out); building from the
//! desired config instead would apply an image change without a purge.
//! `Restart` keeps the container and its spec: a counter change that brings
//! new resources, env, runtime or VNC settings is planned as a `Replace`
//! (same volume, new container). Call [`record_outcome`] after every action.
//!
//! # Current limitations
//! * If the agent dies between carrying out a counter-driven `Restart` (or a
//!   `Replace` that keeps the task ID) and recording it, it happens once
//!   more: containerd labels do not carry the restart counter. (Create,
//!   Purge and a Replace to a new task ID are recognised from the task ID
//!   and volume generation labels.)
//! * A run's length is measured up to the plan that notices its end, so an
//!   exit noticed late (agent down) may count as a healthy run.
//! * Without a record (lost history), a found container is assumed to match
//!   the desired config except for what its labels say (version, app number,
//!   purge generation).
//! * Volume data of a stale duplicate container of an older generation is
//!   not deleted (it is halted, never purged).
//! * Only one error per app is reported; pending-change text moves to the
//!   note while a failure is shown.
//! * One backoff time per app: a failed halt of a stale duplicate container
//!   also delays the app's own next start.
//! * Data volumes (`volumes:`) are the executor's to create and delete; the
//!   planner only tracks the container volume's generation.

mod action;
mod clock;
mod decide;
mod diff;
mod exited;
mod halting;
mod history;
mod images;
mod job;
mod known_good;
mod local;
mod networks;
mod observed;
mod outcome;
mod plan;
mod policy;
mod severity;
mod status;
mod step;
mod waves;

pub use action::{Action, ActionKind};
pub use clock::{datetime, millis, rfc3339};
pub use halting::keep_removed_visible;
pub use history::{AppRecord, ErrorKind, History, LocalActivate};
pub use images::{images_to_keep, KnownGood};
pub use job::{bind, ActionFailure, BindContext, Build, FailureClass, Job, Unbound, Work};
pub use known_good::{ConfigInEffect, HealthTracker};
pub use local::{local_override_note, with_local_activate, with_local_counters, LocalCounters};
pub use networks::{plan_networks, NetworkInput, NetworkPlan};
pub use observed::{Observed, Phase};
pub use outcome::{record_failure_of, record_outcome, record_permanent_failure};
pub use plan::{plan, Input, Plan};
pub use policy::{wants_restart, Tunables};
pub use status::AppStatusUpdate;
pub use waves::Waves;
