//! The admin API's messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::db::{InfoRecord, MetricsSample};
use crate::limits::StatsSnapshot;

/// A device as `device list` shows it (`GET /v1/devices`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    /// Name.
    pub name: String,
    /// UUID.
    pub uuid: String,
    /// Serial number.
    pub serial: String,
    /// Registered at least once (else waiting on the onboarding list).
    pub registered: bool,
    /// Last request from the device or last info received (RFC 3339).
    #[serde(default)]
    pub last_seen: Option<String>,
    /// A config long-poll of the device is waiting now.
    #[serde(default)]
    pub connected: bool,
    /// Generation of the config set on the controller.
    #[serde(default)]
    pub config_set: Option<u64>,
    /// Generation the device last reported in effect.
    #[serde(default)]
    pub config_applied: Option<u64>,
    /// Why the device refused the last config, if it did.
    #[serde(default)]
    pub config_error: Option<String>,
    /// Apps the device last reported.
    pub apps: usize,
    /// App count per state (`RUNNING` → 3).
    #[serde(default)]
    pub app_states: BTreeMap<String, usize>,
    /// Expiry of the newest device certificate (RFC 3339).
    #[serde(default)]
    pub cert_not_after: Option<String>,
    /// Serial number of the newest device certificate (hex).
    #[serde(default)]
    pub cert_serial: Option<String>,
    /// When the device was revoked (RFC 3339), if it was.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// `device status` (`GET /v1/devices/{dev}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The summary.
    pub device: DeviceView,
    /// The config set, if any.
    #[serde(default)]
    pub config: Option<ConfigView>,
    /// The last info the device sent.
    #[serde(default)]
    pub info: Option<InfoRecord>,
    /// Log lines held and dropped.
    pub log_lines: u64,
    /// Log lines dropped to stay within the bound.
    pub log_lines_dropped: u64,
}

/// The config set for a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    /// Generation.
    pub generation: u64,
    /// When set (RFC 3339).
    pub set_at: String,
    /// Unquoted ETag.
    pub etag: String,
    /// App entries.
    pub apps: usize,
    /// Apps the agent will reject.
    pub warnings: Vec<String>,
}

/// `POST /v1/devices`: `device add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddDevice {
    /// Name.
    pub name: String,
    /// Serial number.
    pub serial: String,
}

/// `PUT /v1/devices/{dev}/config`: `device set-config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetConfig {
    /// The YAML (or JSON) document.
    pub document: String,
}

/// `GET /v1/devices/{dev}/metrics?n=N`.
pub type MetricsView = Vec<MetricsSample>;

/// One log line as the CLI prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineView {
    /// Per-device sequence number.
    pub seq: u64,
    /// When memlogd received it.
    pub time: String,
    /// memlogd source.
    pub source: String,
    /// App UUID, if from an app.
    #[serde(default)]
    pub app: Option<String>,
    /// App name, when known from the config or info.
    #[serde(default)]
    pub app_name: Option<String>,
    /// The line.
    pub msg: String,
}

/// `GET /v1/devices/{dev}/logs?app=&n=&after=&wait=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    /// Lines, oldest first.
    pub lines: Vec<LogLineView>,
    /// Pass as `after` to continue (the last sequence number looked at).
    #[serde(default)]
    pub next_after: Option<u64>,
    /// Lines dropped for the device so far to stay within the bound.
    pub dropped: u64,
}

/// `GET /v1/server`: `outpost-controller stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerView {
    /// Controller version.
    pub version: String,
    /// Unknown serials may register.
    pub open_onboarding: bool,
    /// Devices known.
    pub devices: usize,
    /// Counters.
    pub stats: StatsSnapshot,
}
