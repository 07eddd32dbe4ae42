//! The runtime seam: everything the reconcile loop asks of the device's
//! container runtime, as one trait. [`ContainerdDriver`] is the real one
//! (the user containerd, CNI, memlogd FIFOs); `recording::RecordingDriver`
//! is an in-memory double that records every call, so the loop's own logic
//! is tested with tables instead of only end to end.
//!
//! Every operation is idempotent (the loop may repeat it after a crash) and
//! returns a typed [`DriverError`] saying whether retrying can help.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use outpost_api::{AppConfig, NetworkConfig, RegistryConfig};
use outpost_reconcile::{ActionFailure, Build, FailureClass, Observed};
use outpost_runtime::pull::PullProgress;
use tokio::sync::watch;

use super::downloads::Failure;

mod containerd;
#[cfg(test)]
pub mod recording;

pub use containerd::ContainerdDriver;

/// A container found by [`Driver::observe`].
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The planner's view (purge generation decoded, task phase).
    pub app: Observed,
    /// Runtime class (`runc`, `runsc`).
    pub runtime: String,
    /// Addresses by network instance UUID.
    pub ips: Vec<(String, std::net::Ipv4Addr)>,
}

/// The network instances the device holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkState {
    /// UUIDs of the instances set up by the agent.
    pub owned: Vec<String>,
    /// Attachment records: task ID and the networks it is on.
    pub attachments: Vec<(String, Vec<String>)>,
}

/// A runtime operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct DriverError {
    /// Whether retrying alone can help.
    pub class: FailureClass,
    /// The operation and its object (`creating app web (6f1c…)`).
    pub what: String,
    /// The cause, with its chain.
    pub message: String,
}

impl DriverError {
    /// A transient failure of `what` caused by `e`.
    pub fn transient(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        DriverError {
            class: FailureClass::Transient,
            what: what.into(),
            message: e.to_string(),
        }
    }

    /// A failure of `what` that retrying alone cannot fix.
    pub fn permanent(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        DriverError {
            class: FailureClass::Permanent,
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// Why an action failed, as the executor reports it.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The runtime refused or failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The app's image could not be fetched.
    #[error(transparent)]
    Download(#[from] Failure),
}

impl ActionError {
    /// The planner's view of the failure.
    pub fn to_failure(&self) -> ActionFailure {
        let class = match self {
            ActionError::Driver(e) => e.class,
            ActionError::Download(f) => match f.class {
                outpost_runtime::pull::ErrorClass::Transient => FailureClass::Transient,
                outpost_runtime::pull::ErrorClass::Permanent => FailureClass::Permanent,
            },
        };
        ActionFailure {
            class,
            reason: self.to_string(),
        }
    }
}

/// A download in progress ([`Driver::fetch_image`]).
pub type Fetch = std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'static>>;

/// Result of a driver operation.
pub type DriverResult<T> = Result<T, DriverError>;

/// What the loop needs of a container runtime. Implementations are cheap to
/// share (`Arc`) and safe to call from concurrent actions.
pub trait Driver: Send + Sync + 'static {
    /// Every app container with its task state and addresses.
    fn observe(&self) -> impl Future<Output = DriverResult<Vec<Found>>> + Send;

    /// Whether `reference` is in the runtime's image store.
    fn image_present(&self, reference: &str) -> impl Future<Output = DriverResult<bool>> + Send;

    /// Fetches `reference` into the image store (pull or local import),
    /// reporting progress. Runs in the download stage, never in a pass, so
    /// the future owns what it needs.
    fn fetch_image(
        &self,
        reference: String,
        registries: Vec<RegistryConfig>,
        progress: watch::Sender<PullProgress>,
    ) -> Fetch;

    /// Whether the image of `app` sets a VNC password through its label
    /// (`None`: the image is not there yet).
    fn image_sets_vnc(&self, app: &AppConfig) -> impl Future<Output = Option<bool>> + Send;

    /// Builds the container of `build.app` (volume, spec, interfaces, log
    /// FIFOs attached to memlogd) and starts its task.
    fn create(&self, build: &Build) -> impl Future<Output = DriverResult<()>> + Send;

    /// Starts a created task.
    fn start(&self, task_id: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// A new task on the same container (interfaces re-made if the namespace
    /// is gone, fresh log FIFOs).
    fn restart(&self, task_id: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Freezes the task (an operator's pause; the planner leaves it paused).
    fn pause(&self, task_id: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Thaws a paused task.
    fn resume(&self, task_id: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Stops (grace period, then SIGKILL) and deletes task and container;
    /// volumes stay. Nothing to do when it is gone.
    fn remove_container(&self, task_id: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Deletes the container volume of `generation` and the data volumes of
    /// `data` (the config they were made for).
    fn remove_volumes(
        &self,
        uuid: &str,
        generation: u64,
        data: Option<&AppConfig>,
    ) -> impl Future<Output = DriverResult<()>> + Send;

    /// Deletes whatever app `uuid` left: every container volume generation
    /// and the log FIFOs of every task.
    fn remove_leftovers(&self, uuid: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// The network instances and attachments on the device.
    fn networks(&self) -> impl Future<Output = DriverResult<NetworkState>> + Send;

    /// Whether instance `n` looks fully set up (cheap, no changes).
    fn network_complete(&self, n: &NetworkConfig) -> bool;

    /// Sets up (or repairs) instance `n`; true if anything changed.
    fn ensure_network(&self, n: &NetworkConfig) -> impl Future<Output = DriverResult<bool>> + Send;

    /// Removes instance `uuid`.
    fn remove_network(&self, uuid: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Frees the network attachment of a task that is gone.
    fn detach(&self, task_id: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Deletes images not in `keep` and older than `grace`; returns them.
    fn collect_images(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
    ) -> impl Future<Output = DriverResult<Vec<String>>> + Send;
}
