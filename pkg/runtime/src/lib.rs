//! Outpost's containerd driver: what EVE's `pkg/pillar/containerd` does for
//! native containers, over containerd's gRPC API (no `ctr`).
//!
//! * [`instance::UserInstance`] starts and supervises the user containerd
//!   (EVE exits fatally when it dies; Outpost restarts it, tasks survive).
//! * [`image`] imports OCI layouts by hand (containerd 1.6 has no Transfer
//!   service) and resolves images for apps.
//! * [`volume`] keeps EVE's container-volume layout and snapshot-ID rules.
//! * [`spec`] builds the OCI runtime spec from an `AppConfig` (EVE-FACTS §4, §5).
//! * [`services`] observes, restarts and execs in the system instance's
//!   device services (`services.linuxkit`).
//! * [`task`] has the container/task verbs; [`Runtime`] ties them into
//!   idempotent app-level steps; [`observe`] rebuilds state from labels.
//!
//! # Current limitations
//! * Apps without `interfaces` get a fresh isolated network namespace; see
//!   [`net`] for what app networking does not do yet.
//! * [`pull`] resumes an interrupted blob within one pull, not across a
//!   restart of the puller.

pub mod app;
mod app_seam;
pub mod client;
pub mod error;
pub mod events;
pub mod image;
pub mod instance;
pub mod labels;
pub mod layout;
pub mod lease;
pub mod mount;
pub mod net;
pub mod observe;
pub mod pull;
pub mod runsc;
pub mod services;
pub mod spec;
pub mod task;
mod task_io;
pub mod volume;

pub use app::{CreatedApp, Runtime, TaskIo};
pub use client::{Containerd, SNAPSHOTTER, SYSTEM_NAMESPACE, USER_NAMESPACE};
pub use error::{Result, RuntimeError};
pub use layout::Layout;
pub use observe::ObservedApp;
