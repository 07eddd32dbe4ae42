//! Per-app memory of past decisions. The agent persists it (redb) after every
//! plan and every recorded outcome; the planner never reads anything else
//! from the past.
//!
//! Every field has a serde default, so a record written by an older agent
//! (fewer fields) still loads.

use std::collections::BTreeMap;

use outpost_api::{AppConfig, ErrorDescription};
use serde::{Deserialize, Serialize};

use crate::action::ActionKind;

/// Decision records of all apps the agent knows, by app UUID.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct History {
    /// One record per app UUID.
    pub apps: BTreeMap<String, AppRecord>,
}

/// What the planner remembers about one app.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppRecord {
    /// The config the app's container was last built from (counters,
    /// resources, volumes, image), to detect changes.
    pub applied: Option<AppConfig>,
    /// Times (re)started since it was first created.
    pub restarts: u32,
    /// Restarts the restart policy made in a row after a failed run; reset
    /// after a healthy run (`healthy_reset_ms`) or a counter/config change.
    pub attempts: u32,
    /// Earliest time of the next start (restart backoff, or retry after a
    /// failed action).
    pub next_start_ms: Option<u64>,
    /// When the current run started; `None` once its end has been counted.
    pub started_ms: Option<u64>,
    /// The restart policy gave up (FAILED) until the config changes.
    pub failed: bool,
    /// Running at the last plan: such apps start first after a reboot.
    pub was_active: bool,
    /// Current error, with severity, first/last seen and retries.
    pub error: Option<ErrorDescription>,
    /// Informational text for the status (pending version, pending changes
    /// shadowed by an error, a clean exit waiting for its restart).
    pub pending_note: Option<String>,
    /// Outpost addition: the config the start-type action planned last is to
    /// apply. Set by `plan`, moved to `applied` by `record_outcome` on success.
    pub target: Option<AppConfig>,
    /// Outpost addition: the desired config when the app became FAILED; any
    /// difference from it ends FAILED.
    pub failed_config: Option<AppConfig>,
    /// Outpost addition: where `error` comes from, so the right event clears
    /// it and `first_seen` is kept while the same condition persists.
    pub error_kind: Option<ErrorKind>,
    /// Outpost addition: the action whose failure set `next_start_ms`.
    pub retry_of: Option<ActionKind>,
    /// Outpost addition: the operator's `outpost stop|start`, in force
    /// while the config generation it was given under is in effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_activate: Option<LocalActivate>,
}

/// A local activate override (`outpost stop` / `outpost start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalActivate {
    /// The activate value the operator wants.
    pub activate: bool,
    /// The config generation in effect when it was given: a newer config
    /// (from the controller or the file) clears it.
    pub generation: u64,
}

/// Origin of an app's current error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// An action failed; cleared when an action for the app succeeds.
    Action,
    /// The task exited badly; cleared after a healthy run or a config change.
    Exit,
    /// The config changed in a way that needs a counter change.
    Config,
    /// The app's config entry was rejected.
    Rejected,
}

impl AppRecord {
    /// The config `Create`, `Replace` and `Purge` build the container from:
    /// the planned `target`, else the `applied` one.
    pub fn config_to_apply(&self) -> Option<&AppConfig> {
        self.target.as_ref().or(self.applied.as_ref())
    }

    /// Whether a container volume may exist for this app (it was created, or
    /// a creation was attempted).
    pub fn may_have_volume(&self) -> bool {
        self.applied.is_some() || self.target.is_some()
    }

    /// Drops the error if it is of `kind`.
    pub(crate) fn clear_error(&mut self, kind: ErrorKind) {
        if self.error_kind == Some(kind) {
            self.error = None;
            self.error_kind = None;
        }
    }

    /// Forgets the restart policy's and the retry backoff's state: a fresh
    /// decision (counter or config change, halt) starts counting anew.
    pub(crate) fn reset_policy(&mut self) {
        self.attempts = 0;
        self.failed = false;
        self.failed_config = None;
        self.next_start_ms = None;
        self.retry_of = None;
        self.clear_error(ErrorKind::Exit);
        self.clear_error(ErrorKind::Action);
    }
}

impl History {
    /// The record of `uuid`, if any.
    pub fn get(&self, uuid: &str) -> Option<&AppRecord> {
        self.apps.get(uuid)
    }

    /// The config a container-building action for `uuid` uses
    /// (see [`AppRecord::config_to_apply`]); the executor reads it from the
    /// plan's history.
    pub fn config_to_apply(&self, uuid: &str) -> Option<&AppConfig> {
        self.apps.get(uuid).and_then(AppRecord::config_to_apply)
    }
}
