//! The steps the executor carries out. Each is idempotent: a crash halfway is
//! repaired by the next plan.

use serde::{Deserialize, Serialize};

/// One step for the executor.
///
/// Actions that build a container (`Create`, `Replace`, `Purge`) build it
/// from [`History::config_to_apply`](crate::History::config_to_apply) of the
/// plan's history, not from the desired config directly: that config holds
/// back the changes that need a counter the operator has not changed yet
/// (image and volumes without a purge). `Start` and `Restart` never change
/// the container's spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Create the container volume (if missing), the container and its task
    /// for a desired app, then start it.
    Create {
        /// App UUID.
        uuid: String,
    },
    /// Start a task that is created but not running.
    Start {
        /// App UUID.
        uuid: String,
        /// Task to start.
        task_id: String,
    },
    /// Stop the task gracefully (stop signal, grace period, SIGKILL), then a
    /// new task on the same container (same spec) and volume, then start it.
    Restart {
        /// App UUID.
        uuid: String,
        /// Container whose task is replaced.
        task_id: String,
    },
    /// Stop gracefully, delete task and container, KEEP the volumes
    /// (activate false, or a stale duplicate container of a running app).
    Halt {
        /// App UUID.
        uuid: String,
        /// Container to take down.
        task_id: String,
    },
    /// The container must be rebuilt (new version or app number, or new
    /// resources/env/runtime/VNC in the spec): stop and remove the old
    /// container keeping its volume, then do what `Create` does. The task
    /// ID may stay the same.
    Replace {
        /// App UUID.
        uuid: String,
        /// Container to remove.
        old_task_id: String,
    },
    /// Stop and remove the container (if any) AND the container volume of
    /// generation `old_purge_counter`, then do what `Create` does (new
    /// volume generation = the desired purge counter).
    Purge {
        /// App UUID.
        uuid: String,
        /// Container to remove, when one exists.
        task_id: Option<String>,
        /// Generation of the volume to delete.
        old_purge_counter: u64,
    },
    /// The app left the config: stop and remove the container, its volumes
    /// and its log FIFOs.
    ///
    /// `purge_counter` is the generation the planner knows of; since the app
    /// is gone for good, the executor should delete every generation of its
    /// container volume it finds. The data volumes to delete are those of
    /// the record's `applied` config in the plan's history (the record is
    /// dropped once the removal is recorded).
    Remove {
        /// App UUID.
        uuid: String,
        /// Container to remove (may already be gone).
        task_id: String,
        /// Generation of the container volume.
        purge_counter: u64,
    },
}

/// The kind of an [`Action`], without its data (persisted with failures so a
/// retry of the same step is recognised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// [`Action::Create`].
    Create,
    /// [`Action::Start`].
    Start,
    /// [`Action::Restart`].
    Restart,
    /// [`Action::Halt`].
    Halt,
    /// [`Action::Replace`].
    Replace,
    /// [`Action::Purge`].
    Purge,
    /// [`Action::Remove`].
    Remove,
}

impl ActionKind {
    /// Lower-case verb for messages (`create`, `restart`, …).
    pub fn verb(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Start => "start",
            ActionKind::Restart => "restart",
            ActionKind::Halt => "halt",
            ActionKind::Replace => "replace",
            ActionKind::Purge => "purge",
            ActionKind::Remove => "remove",
        }
    }

    /// True for the actions that end with a running task.
    pub fn starts(self) -> bool {
        !matches!(self, ActionKind::Halt | ActionKind::Remove)
    }
}

impl Action {
    /// The app this action is about.
    pub fn uuid(&self) -> &str {
        match self {
            Action::Create { uuid }
            | Action::Start { uuid, .. }
            | Action::Restart { uuid, .. }
            | Action::Halt { uuid, .. }
            | Action::Replace { uuid, .. }
            | Action::Purge { uuid, .. }
            | Action::Remove { uuid, .. } => uuid,
        }
    }

    /// The existing container the action works on, if any.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            Action::Create { .. } => None,
            Action::Start { task_id, .. }
            | Action::Restart { task_id, .. }
            | Action::Halt { task_id, .. }
            | Action::Remove { task_id, .. } => Some(task_id),
            Action::Replace { old_task_id, .. } => Some(old_task_id),
            Action::Purge { task_id, .. } => task_id.as_deref(),
        }
    }

    /// What kind of action this is.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Create { .. } => ActionKind::Create,
            Action::Start { .. } => ActionKind::Start,
            Action::Restart { .. } => ActionKind::Restart,
            Action::Halt { .. } => ActionKind::Halt,
            Action::Replace { .. } => ActionKind::Replace,
            Action::Purge { .. } => ActionKind::Purge,
            Action::Remove { .. } => ActionKind::Remove,
        }
    }
}
