//! The JSON records stored in the tables.

use outpost_api::cloud::{DeviceInfo, DeviceMetrics, SignedEnvelope};
use serde::{Deserialize, Serialize};

/// Settings written by `init`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `host:port` the devices are told (the `server` file of the bundle).
    pub server: String,
    /// Default `serve --listen` address.
    pub listen: String,
    /// Unknown serials may register (named after their serial).
    #[serde(default)]
    pub open_onboarding: bool,
}

/// A device: added by an operator (`device add`, waiting for its first
/// registration) or registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// UUID (assigned when added).
    pub uuid: String,
    /// Name on the controller.
    pub name: String,
    /// Serial number (the onboarding list key).
    pub serial: String,
    /// When the record was made (RFC 3339).
    pub added_at: String,
    /// First registration (RFC 3339); `None` while waiting.
    #[serde(default)]
    pub registered_at: Option<String>,
    /// The device's public key (hex of the raw key bits), bound at first registration.
    #[serde(default)]
    pub public_key: Option<String>,
    /// SHA-256 fingerprints of the certificates issued to that key, newest
    /// last (at most [`DeviceRecord::MAX_CERTS`]).
    #[serde(default)]
    pub cert_fingerprints: Vec<String>,
    /// Expiry of the newest certificate (RFC 3339).
    #[serde(default)]
    pub cert_not_after: Option<String>,
    /// Serial number of the newest certificate (lowercase hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_serial: Option<String>,
    /// When an operator revoked the device (RFC 3339): every request with
    /// its certificates is refused and it may not register again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl DeviceRecord {
    /// Certificates of one device that stay valid at once (a device that
    /// registers again or renews gets a fresh one; the older ones age out).
    pub const MAX_CERTS: usize = 4;

    /// Records a certificate just issued for `public_key`: a new key drops
    /// the certificates of the old one, the same key keeps the newest
    /// [`DeviceRecord::MAX_CERTS`].
    pub fn record_cert(&mut self, public_key: &str, issued: &crate::pki::Issued) {
        if self.public_key.as_deref() != Some(public_key) {
            self.cert_fingerprints.clear();
        }
        self.public_key = Some(public_key.to_owned());
        self.cert_fingerprints.push(issued.fingerprint());
        let excess = self.cert_fingerprints.len().saturating_sub(Self::MAX_CERTS);
        self.cert_fingerprints.drain(..excess);
        self.cert_not_after = Some(
            issued
                .not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        );
        self.cert_serial = Some(issued.serial.clone());
    }
}

/// The config set for a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Assigned generation.
    pub generation: u64,
    /// When set (RFC 3339).
    pub set_at: String,
    /// The operator's text as uploaded.
    pub source: String,
    /// The document as signed (JSON, `generation` set).
    pub document: serde_json::Value,
    /// The signed envelope served to the device.
    pub envelope: SignedEnvelope,
    /// Lowercase hex SHA-256 of the payload (unquoted ETag).
    pub etag: String,
    /// Apps the agent will reject.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The last `info` a device sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoRecord {
    /// When the controller received it (RFC 3339).
    pub received_at: String,
    /// What the device sent.
    pub info: DeviceInfo,
}

/// One `metrics` upload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    /// When the controller received it (RFC 3339).
    pub received_at: String,
    /// What the device sent.
    pub metrics: DeviceMetrics,
}

/// Bookkeeping of a per-device ring (metrics or logs): sequence numbers
/// `first..next` are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingMeta {
    /// Oldest stored sequence number.
    pub first: u64,
    /// Next sequence number to assign.
    pub next: u64,
    /// Entries dropped to stay within the bound.
    pub dropped: u64,
    /// Highest log batch number stored (logs only).
    #[serde(default)]
    pub last_batch: Option<u64>,
}

impl RingMeta {
    /// Entries held.
    pub fn len(&self) -> u64 {
        self.next - self.first
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
