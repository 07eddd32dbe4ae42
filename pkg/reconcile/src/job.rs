//! Actions with the data they need: [`bind`] turns a planned [`Action`]
//! (IDs only, what the planner decides and records) into a [`Job`] whose
//! [`Work`] carries the config to build from, the networks it joins, the
//! volumes to delete. The executor acts on a job alone and never looks the
//! app up again.

use outpost_api::{AppConfig, NetworkConfig, RegistryConfig};

use crate::action::Action;
use crate::history::History;

/// Everything needed to build (or rebuild) an app's container.
#[derive(Clone, Debug, PartialEq)]
pub struct Build {
    /// The config to build from: [`History::config_to_apply`], i.e. the
    /// desired config with the changes still waiting for a counter left
    /// out. Its `purge_counter` is the container volume generation.
    pub app: AppConfig,
    /// The network instances the app's interfaces name (and only those).
    pub networks: Vec<NetworkConfig>,
    /// Device config generation (a container label).
    pub config_generation: u64,
    /// Registry settings for fetching `app.image`.
    pub registries: Vec<RegistryConfig>,
}

/// What carrying out an action involves, with its data.
// A pass makes a handful of jobs and moves each once: boxing the configs
// would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    /// Build and start a container for `build.app`.
    Create {
        /// What to build.
        build: Build,
    },
    /// Start a created task.
    Start {
        /// The task.
        task_id: String,
    },
    /// A new task on the same container and volume.
    Restart {
        /// The container.
        task_id: String,
    },
    /// Take the container down, keep the volumes.
    Halt {
        /// The container.
        task_id: String,
    },
    /// Remove `old_task_id` (keeping its volume), then build anew.
    Replace {
        /// The container to remove.
        old_task_id: String,
        /// What to build.
        build: Build,
    },
    /// Remove the container and the volumes of generation
    /// `old_volume_generation`, then build anew on a new generation.
    Purge {
        /// The container to remove, when one exists.
        old_task_id: Option<String>,
        /// Volume generation to delete.
        old_volume_generation: u64,
        /// The config whose data volumes are deleted (as last applied).
        old_data: AppConfig,
        /// What to build.
        build: Build,
    },
    /// The app left the config: container, every volume generation, data
    /// volumes and log FIFOs go.
    Remove {
        /// The container (may already be gone).
        task_id: String,
        /// Volume generation the planner knows of.
        volume_generation: u64,
        /// The config whose data volumes are deleted, when one is known.
        data: Option<AppConfig>,
    },
}

/// A planned action and the data to carry it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// The decision (recorded with [`record_outcome`](crate::record_outcome)).
    pub action: Action,
    /// What to do.
    pub work: Work,
}

impl Job {
    /// The build of a container-making job.
    pub fn build(&self) -> Option<&Build> {
        match &self.work {
            Work::Create { build } | Work::Replace { build, .. } | Work::Purge { build, .. } => {
                Some(build)
            }
            _ => None,
        }
    }
}

/// The config in effect, as [`bind`] needs it.
#[derive(Clone, Copy, Debug)]
pub struct BindContext<'a> {
    /// Desired apps (after local counters).
    pub desired: &'a [AppConfig],
    /// Network instances of the config.
    pub networks: &'a [NetworkConfig],
    /// Registry settings of the config.
    pub registries: &'a [RegistryConfig],
    /// Config generation.
    pub generation: u64,
    /// The plan's history (what to build from, what was applied).
    pub history: &'a History,
}

/// An action [`bind`] cannot give data to.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{verb} of app {uuid}: the app is neither in the config nor in the history")]
pub struct Unbound {
    /// The app.
    pub uuid: String,
    /// The action's verb.
    pub verb: &'static str,
}

/// Gives `action` its data.
pub fn bind(action: Action, cx: &BindContext<'_>) -> Result<Job, Unbound> {
    let uuid = action.uuid().to_owned();
    let unbound = || Unbound {
        uuid: uuid.clone(),
        verb: action.kind().verb(),
    };
    let record = cx.history.apps.get(&uuid);
    let applied = record.and_then(|r| r.applied.clone());
    let build = || -> Result<Build, Unbound> {
        let app = cx
            .history
            .config_to_apply(&uuid)
            .or_else(|| cx.desired.iter().find(|a| a.uuid == uuid))
            .cloned()
            .ok_or_else(unbound)?;
        let networks = cx
            .networks
            .iter()
            .filter(|n| app.interfaces.iter().any(|i| i.network == n.uuid))
            .cloned()
            .collect();
        Ok(Build {
            app,
            networks,
            config_generation: cx.generation,
            registries: cx.registries.to_vec(),
        })
    };
    let work = match &action {
        Action::Create { .. } => Work::Create { build: build()? },
        Action::Start { task_id, .. } => Work::Start {
            task_id: task_id.clone(),
        },
        Action::Restart { task_id, .. } => Work::Restart {
            task_id: task_id.clone(),
        },
        Action::Halt { task_id, .. } => Work::Halt {
            task_id: task_id.clone(),
        },
        Action::Replace { old_task_id, .. } => Work::Replace {
            old_task_id: old_task_id.clone(),
            build: build()?,
        },
        Action::Purge {
            task_id,
            old_purge_counter,
            ..
        } => {
            let build = build()?;
            Work::Purge {
                old_task_id: task_id.clone(),
                old_volume_generation: *old_purge_counter,
                old_data: applied.unwrap_or_else(|| build.app.clone()),
                build,
            }
        }
        Action::Remove {
            task_id,
            purge_counter,
            ..
        } => Work::Remove {
            task_id: task_id.clone(),
            volume_generation: *purge_counter,
            data: applied.or_else(|| cx.desired.iter().find(|a| a.uuid == uuid).cloned()),
        },
    };
    Ok(Job { action, work })
}

/// Whether retrying a failed action can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Retry with backoff (network, a daemon restarting, a lock).
    Transient,
    /// Only a config change can help (image not found, bad spec): severity
    /// error at once, retried only with the capped backoff.
    Permanent,
}

/// A failed action, as the executor reports it to the planner.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ActionFailure {
    /// Transient or permanent.
    pub class: FailureClass,
    /// What went wrong, naming the object.
    pub reason: String,
}
