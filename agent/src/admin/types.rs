//! The local admin API's messages (JSON over HTTP/1 on a root-only unix
//! socket). The CLI is its only intended client.

use outpost_api::AppStatus;
use serde::{Deserialize, Serialize};

/// `GET /v1/info`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// Agent version.
    pub version: String,
    /// Generation of the config in effect.
    pub config_generation: Option<u64>,
    /// Where it came from (`file:/…`, `checkpoint`, …).
    pub config_source: Option<String>,
    /// Seconds since the agent started.
    pub uptime_secs: u64,
    /// Times the user containerd was restarted by the agent.
    pub user_containerd_restarts: u32,
    /// Task events dropped because the loop fell behind (it resyncs then).
    pub events_dropped: u64,
    /// Image requests refused because the download table was full (the
    /// app retries after its backoff).
    #[serde(default)]
    pub downloads_refused: u64,
    /// Why the last config document was refused, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Config documents evaluated since the agent started (accepted or
    /// refused, from any source; the checkpoint loaded at start counts).
    #[serde(default)]
    pub configs_evaluated: u64,
    /// `configs_evaluated` as of the start of the last reconcile pass that
    /// found nothing to do. Equal to `configs_evaluated` once the agent has
    /// acted on every document it was given: wait for that instead of sleeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_through: Option<u64>,
    /// The controller connection, when `/config/server` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<ControllerView>,
    /// The A/B base OS slot booted, when the device booted through slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_os: Option<BaseOsView>,
}

/// The A/B base OS slots as `outpost version` shows them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BaseOsView {
    /// The slot the root was mounted from (`IMGA`, `IMGB`).
    pub slot: String,
    /// What the initramfs noted this boot (a slot marked failed, a repaired GPT).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The last base OS update, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateView>,
}

/// A base OS update's step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UpdateView {
    /// DOWNLOADING, VERIFYING, INSTALLED, TESTING, COMMITTED, ROLLED BACK, FAILED.
    pub phase: String,
    /// The image's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The slot it went into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why it failed or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While DOWNLOADING: bytes in the other slot, made durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded: Option<u64>,
}

impl Info {
    /// True when the last idle pass began after every document evaluated so
    /// far (and after at least `min_evaluated` of them).
    pub fn settled(&self, min_evaluated: u64) -> bool {
        self.configs_evaluated >= min_evaluated
            && self
                .idle_through
                .is_some_and(|n| n >= self.configs_evaluated)
    }
}

/// The controller connection as `outpost status` shows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ControllerView {
    /// `host:port`.
    pub server: String,
    /// Device UUID, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Device name on the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `onboarding`, `connected`, `unreachable`.
    pub state: String,
    /// Seconds since the controller last answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_secs_ago: Option<u64>,
    /// The last error talking to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Log batches waiting to be uploaded.
    pub log_batches_queued: u64,
    /// Log batches dropped because the queue was full (ever).
    pub log_batches_dropped: u64,
    /// Lines in them.
    pub log_lines_dropped: u64,
    /// The device certificate: expiry and renewals.
    #[serde(default)]
    pub cert: CertView,
}

/// `GET /v1/apps/{app}` when the app is unknown.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotFound {
    /// What was asked for.
    pub error: String,
    /// Close names, most similar first.
    pub suggestions: Vec<String>,
}

/// `POST /v1/apps/{app}/restart|purge` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CounterBumped {
    /// The app.
    pub app: String,
    /// New local counter value.
    pub local_counter: u64,
}

/// `POST /v1/apps/{app}/pause|resume` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PauseDone {
    /// The app.
    pub app: String,
    /// Its task.
    pub task_id: String,
    /// Whether it is now paused.
    pub paused: bool,
}

/// `POST /v1/apps/{app}/stop|start` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActivateOverridden {
    /// The app.
    pub app: String,
    /// The activate value now in force.
    pub activate: bool,
    /// The config generation the override holds for (a newer one ends it).
    pub generation: u64,
}

/// `POST /v1/apps/{app}/exec` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Command and arguments.
    pub args: Vec<String>,
    /// Timeout in milliseconds.
    pub timeout_ms: u64,
}

/// `POST /v1/apps/{app}/exec` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecResponse {
    /// Exit status.
    pub exit_status: u32,
    /// stdout (lossy UTF-8).
    pub stdout: String,
    /// stderr (lossy UTF-8).
    pub stderr: String,
    /// Output was cut at the bound.
    pub truncated: bool,
}

/// One readiness check (`GET /v1/check`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Check {
    /// Check name (`user-containerd`, `memlogd`, …).
    pub name: String,
    /// Passed?
    pub ok: bool,
    /// What was seen, and the fix when it failed.
    pub detail: String,
}

/// An app as `outpost list` shows it.
pub type AppView = AppStatus;

/// An error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// Message.
    pub error: String,
}

/// A network instance as `outpost networks` shows it (`GET /v1/networks`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkView {
    /// Network UUID.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// `local` or `switch`.
    pub kind: String,
    /// Subnet (CIDR).
    pub subnet: String,
    /// Host-side device (bridge, or the switch's host port).
    pub device: String,
    /// Apps with an interface on it, as `name=ip` (ip once assigned).
    pub apps: Vec<String>,
}

/// The device certificate as the renewal task reports it
/// (`agent/src/daemon/cloud/renew.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertView {
    /// Expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
    /// When renewal is due, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<u64>,
    /// Renewals done since the agent started.
    #[serde(default)]
    pub renewals: u64,
    /// Re-registrations with the onboarding certificate after expiry.
    #[serde(default)]
    pub reauthentications: u64,
    /// Failed renewal attempts since the agent started.
    #[serde(default)]
    pub failures: u64,
    /// The last failure, cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}
