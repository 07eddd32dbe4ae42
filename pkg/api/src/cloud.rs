//! The controller wire format (`/api/v1/`, JSON over HTTPS with mutual
//! TLS). Shared by the agent's client (`outpost-cloud`) and the reference
//! controller (`outpost-controller`); `docs/api.md` is the prose version.
//!
//! Pure types: signing and verification live in the crates that hold keys.

use serde::{Deserialize, Serialize};

use crate::status::AppStatus;

/// URL prefix of every endpoint.
pub const API_PREFIX: &str = "/api/v1";
/// Signature algorithm of [`SignedEnvelope`]: ECDSA over P-256 with
/// SHA-256, signature ASN.1 DER encoded.
pub const ALG_ECDSA_P256_SHA256: &str = "ECDSA_P256_SHA256";
/// Longest long-poll wait the controller honours, seconds.
pub const MAX_WAIT_SECS: u64 = 300;
/// Largest signed config envelope (JSON) a device reads: 8 MiB, room for
/// the controller's 4 MiB document as JSON in base64 (× 4/3) plus the
/// envelope. The controller refuses to sign a larger one.
pub const MAX_ENVELOPE_BYTES: usize = 8 << 20;
/// Request header carrying a log batch's sequence number.
pub const BATCH_HEADER: &str = "x-outpost-batch";

/// `GET /api/v1/certs`: the controller's signing certificate (PEM), which
/// must chain to the root CA and carry the code-signing extended key usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertsResponse {
    /// Signing certificate, PEM.
    pub signing_cert_pem: String,
}

/// `POST /api/v1/register`, authenticated by the onboarding certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The device's serial number (hardware identity; the controller's
    /// onboarding list is keyed by it).
    pub serial: String,
    /// A PKCS#10 certificate signing request (PEM) for the device key,
    /// generated on the device; the private key never leaves it.
    pub csr_pem: String,
}

/// Answer to [`RegisterRequest`]. Registering again with the same serial
/// and the same key is idempotent (same UUID, a fresh certificate); the
/// same serial with another key is refused with 409.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResponse {
    /// The device UUID used in every later URL.
    pub uuid: String,
    /// Device name on the controller.
    pub name: String,
    /// The device certificate (PEM), issued by the controller's CA, used
    /// as the TLS client certificate from now on.
    pub cert_pem: String,
}

/// `POST /api/v1/devices/<uuid>/cert`, authenticated by the device's
/// current certificate: a new certificate for the key of `csr_pem` (the
/// same key, or a new one that replaces it from then on).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// A PKCS#10 certificate signing request (PEM) for the key to certify.
    pub csr_pem: String,
}

/// Answer to [`RenewRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The new device certificate (PEM).
    pub cert_pem: String,
    /// Its expiry (RFC 3339).
    pub not_after: String,
}

/// A signed object: `signature` is over the exact `payload` bytes (after
/// base64 decoding), made by the certificate whose DER SHA-256 is `signer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedEnvelope {
    /// Base64 (standard alphabet, padded) of the payload bytes.
    pub payload: String,
    /// Lowercase hex SHA-256 of the signing certificate's DER.
    pub signer: String,
    /// Always [`ALG_ECDSA_P256_SHA256`].
    pub alg: String,
    /// Base64 of the DER-encoded ECDSA signature.
    pub signature: String,
}

/// What a signed config payload holds (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigPayload {
    /// The device this config is for; `None` only in a bootstrap config
    /// (`/config/bootstrap-config.json`), which any device may use.
    pub device: Option<String>,
    /// Same as `config.generation`: strictly increasing per device.
    pub generation: u64,
    /// When the controller signed it (RFC 3339).
    pub issued_at: String,
    /// The device config document as the operator wrote it (app entries
    /// the agent cannot use are kept, so the device reports them).
    pub config: serde_json::Value,
}

/// `/config/bootstrap-config.json`: a config a device may use on its first
/// boot, before it has reached the controller, with the signing certificate
/// it needs to check it offline (the certificate must still chain to the
/// root CA and the payload's `device` must be `None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Signing certificate, PEM.
    pub signing_cert_pem: String,
    /// The signed config.
    pub config: SignedEnvelope,
}

/// `POST /api/v1/devices/<uuid>/info`: sent when something changes and
/// every info interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Agent version.
    pub agent_version: String,
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel: String,
    /// Seconds since the agent started.
    pub agent_uptime_secs: u64,
    /// When this report was made (RFC 3339).
    pub reported_at: String,
    /// Generation of the config in effect (0: none).
    pub config_generation: u64,
    /// Where the config in effect came from (`controller`, `checkpoint`,
    /// `bootstrap`, `file:…`).
    pub config_origin: String,
    /// Why the last document was refused, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Every app in the config, with its state.
    pub apps: Vec<AppStatus>,
    /// The device's system services (`services.linuxkit`), when the agent
    /// observes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<crate::ServiceStatus>,
    /// The base OS slot and the last update's step, on a device with A/B slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_os: Option<crate::baseos::BaseOsStatus>,
}

/// `POST /api/v1/devices/<uuid>/metrics`: every metrics interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceMetrics {
    /// When sampled (RFC 3339).
    pub at: String,
    /// Device-wide figures.
    pub device: HostMetrics,
    /// One entry per app with a task.
    pub apps: Vec<AppMetrics>,
    /// Counted losses on the device since the agent started (name → count),
    /// e.g. `log_batches_dropped`, `containerd_events_dropped`.
    #[serde(default)]
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// Device-wide metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMetrics {
    /// Total memory, bytes.
    pub mem_total_bytes: u64,
    /// Available memory, bytes.
    pub mem_available_bytes: u64,
    /// CPU time used by the whole machine since boot, nanoseconds (all cores).
    pub cpu_busy_ns: u64,
    /// Number of CPUs.
    pub cpus: u32,
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// Agent resident memory, bytes.
    pub agent_rss_bytes: u64,
}

/// Per-app metrics from the task's cgroup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMetrics {
    /// App UUID.
    pub uuid: String,
    /// Display name.
    pub name: String,
    /// Memory in use, bytes.
    pub mem_bytes: u64,
    /// CPU time used, nanoseconds.
    pub cpu_ns: u64,
}

/// One log line in a batch (`POST /api/v1/devices/<uuid>/logs`, body gzip
/// of JSON lines, header [`BATCH_HEADER`] = batch sequence number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When memlogd received it (RFC 3339 with fractional seconds).
    pub time: String,
    /// memlogd source (`guest_vm-<task>`, `outpostd`, …).
    pub source: String,
    /// App UUID when the source is an app's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The line.
    pub msg: String,
}

/// Answer to a log batch: the batch is stored (or was already: batches
/// with a sequence number at or below the last stored one are acknowledged
/// without being stored again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogAck {
    /// Highest batch sequence number the controller holds for this device.
    pub acked: u64,
}

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong, naming the object.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_refuses_unknown_fields() {
        let ok = r#"{"payload":"e30=","signer":"ab","alg":"ECDSA_P256_SHA256","signature":"AA=="}"#;
        assert!(serde_json::from_str::<SignedEnvelope>(ok).is_ok());
        let extra = r#"{"payload":"e30=","signer":"ab","alg":"x","signature":"AA==","unsigned":1}"#;
        assert!(serde_json::from_str::<SignedEnvelope>(extra).is_err());
    }
}
