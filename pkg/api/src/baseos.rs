//! The base OS image a device should run (`base_os:` in the device
//! config, so it is signed with the rest of it): where to fetch the root
//! squashfs, its digest, and the test window of EVE's base OS update.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration_text;
use crate::problem::Problem;

/// Bounds of the test window (EVE's `timer.test.baseimage.update`: 30-3600 s).
pub const TEST_WINDOW_RANGE: (Duration, Duration) =
    (Duration::from_secs(30), Duration::from_secs(3600));
/// The longest `version` and `url`.
pub const MAX_TEXT_LEN: usize = 256;

/// `base_os:` of the device config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseOsConfig {
    /// The image's version string, shown in status (`0.2.0`).
    pub version: String,
    /// Where the root squashfs is fetched: `http://`, `file:/`, or
    /// `https://` of the device's own controller (fetched with the device's
    /// mTLS identity; what `outpost-controller base-os publish` sets). The
    /// digest, signed with the config, is what makes plain HTTP safe.
    pub url: String,
    /// sha256 of the squashfs, lowercase hex; the image is refused unless it matches.
    pub sha256: String,
    /// A version that failed is not tried again until this changes.
    #[serde(default)]
    pub retry: u32,
    /// How long the new image has to become healthy (controller reached,
    /// config applied, apps RUNNING) before it is rolled back. EVE: 600 s.
    #[serde(default = "default_test_window", with = "duration_text")]
    pub test_window: Duration,
    /// Roll back when the controller stays unreachable this long during the
    /// test window. EVE: 300 s.
    #[serde(default = "default_fallback", with = "duration_text")]
    pub fallback: Duration,
}

/// The base OS as the device reports it to the controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseOsStatus {
    /// The slot running (`IMGA`, `IMGB`).
    pub slot: String,
    /// The last update's step: DOWNLOADING, VERIFYING, INSTALLED, TESTING,
    /// COMMITTED, ROLLED BACK, FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<String>,
    /// The version it was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why it failed or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While DOWNLOADING: bytes written to the other slot and made durable
    /// (synced every 16 MiB; an interrupted download resumes from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloaded_bytes: Option<u64>,
}

/// ` (48.0 MiB so far)`: a download's bytes, as status lines show them.
pub fn download_progress(bytes: u64) -> String {
    format!(" ({:.1} MiB so far)", bytes as f64 / f64::from(1 << 20))
}

impl BaseOsStatus {
    /// One line for an operator: `slot IMGA; update 0.2.0: DOWNLOADING
    /// (48.0 MiB so far)`.
    pub fn summary(&self) -> String {
        let mut out = format!("slot {}", self.slot);
        if let Some(step) = &self.update {
            out.push_str("; update ");
            if let Some(v) = &self.version {
                out.push_str(v);
                out.push_str(": ");
            }
            out.push_str(step);
            if let Some(n) = self.downloaded_bytes {
                out.push_str(&download_progress(n));
            }
            if let Some(r) = &self.reason {
                out.push_str(&format!(" ({r})"));
            }
        }
        out
    }
}

fn default_test_window() -> Duration {
    Duration::from_secs(600)
}

fn default_fallback() -> Duration {
    Duration::from_secs(300)
}

/// The problems of `b`, with paths under `base_os`.
pub fn validate_base_os(b: &BaseOsConfig, out: &mut Vec<Problem>) {
    let mut err = |f: &str, m: String| out.push(Problem::new(format!("base_os.{f}"), m));
    if b.version.is_empty()
        || b.version.len() > MAX_TEXT_LEN
        || !b.version.chars().all(|c| c.is_ascii_graphic())
    {
        err(
            "version",
            format!("must be 1 to {MAX_TEXT_LEN} printable ASCII characters"),
        );
    }
    let scheme_ok = ["http://", "https://", "file:/"]
        .iter()
        .any(|s| b.url.starts_with(s));
    if !scheme_ok || b.url.len() > MAX_TEXT_LEN || b.url.chars().any(|c| c.is_whitespace()) {
        err(
            "url",
            format!("must be an http://, https:// or file:/ URL of at most {MAX_TEXT_LEN} characters without spaces"),
        );
    }
    if b.sha256.len() != 64
        || !b
            .sha256
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        err("sha256", "must be 64 lowercase hex digits".into());
    }
    let (lo, hi) = TEST_WINDOW_RANGE;
    if b.test_window < lo || b.test_window > hi {
        err(
            "test_window",
            format!("must be {}s to {}s", lo.as_secs(), hi.as_secs()),
        );
    }
    if b.fallback.is_zero() || b.fallback > b.test_window {
        err(
            "fallback",
            "must be more than 0 and at most the test window".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> BaseOsConfig {
        serde_json::from_value(serde_json::json!({
            "version": "0.2.0",
            "url": "http://10.0.2.101:9000/rootfs.squashfs",
            "sha256": "a".repeat(64),
        }))
        .unwrap()
    }

    fn problems(b: &BaseOsConfig) -> Vec<String> {
        let mut out = Vec::new();
        validate_base_os(b, &mut out);
        out.into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn defaults_are_eves() {
        let b = ok();
        assert_eq!(b.test_window, Duration::from_secs(600));
        assert_eq!(b.fallback, Duration::from_secs(300));
        assert_eq!(b.retry, 0);
        assert!(problems(&b).is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        type Change = Box<dyn Fn(&mut BaseOsConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("base_os.version", Box::new(|b| b.version = String::new())),
            ("base_os.version", Box::new(|b| b.version = "a b".into())),
            ("base_os.url", Box::new(|b| b.url = "ftp://x/y".into())),
            ("base_os.url", Box::new(|b| b.url = "httpx://x/y".into())),
            ("base_os.url", Box::new(|b| b.url = "http://x/ y".into())),
            ("base_os.sha256", Box::new(|b| b.sha256 = "A".repeat(64))),
            ("base_os.sha256", Box::new(|b| b.sha256 = "a".repeat(63))),
            (
                "base_os.test_window",
                Box::new(|b| {
                    b.test_window = Duration::from_secs(5);
                    b.fallback = Duration::from_secs(1);
                }),
            ),
            (
                "base_os.fallback",
                Box::new(|b| b.fallback = Duration::from_secs(900)),
            ),
        ];
        for (path, f) in cases {
            let mut b = ok();
            f(&mut b);
            assert_eq!(problems(&b), [path], "{b:?}");
        }
        let e = serde_json::from_value::<BaseOsConfig>(serde_json::json!({
            "version": "1", "url": "file:/x", "sha256": "a", "digest": "x"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `digest`"), "{e}");
    }
}

#[cfg(test)]
mod status_tests {
    use super::BaseOsStatus;

    #[test]
    fn summary_names_slot_step_progress_and_reason() {
        let mut s = BaseOsStatus {
            slot: "IMGA".into(),
            ..Default::default()
        };
        assert_eq!(s.summary(), "slot IMGA");
        s.update = Some("DOWNLOADING".into());
        s.version = Some("0.2.0".into());
        s.downloaded_bytes = Some(48 << 20);
        assert_eq!(
            s.summary(),
            "slot IMGA; update 0.2.0: DOWNLOADING (48.0 MiB so far)"
        );
        s.update = Some("FAILED".into());
        s.downloaded_bytes = None;
        s.reason = Some("digest mismatch".into());
        assert_eq!(
            s.summary(),
            "slot IMGA; update 0.2.0: FAILED (digest mismatch)"
        );
    }
}
