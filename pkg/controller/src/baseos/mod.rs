//! Base OS images published to devices (`base-os publish`): the update
//! artifact (the root squashfs `outpost-mkimage` builds) is streamed into
//! `<state>/base-os/<sha256>.squashfs` while it is hashed, recorded in the
//! store, served to devices over the device API
//! (`GET /api/v1/base-os/<sha256>`, device certificates only,
//! [`crate::server::baseos`]), and named in the targeted devices' configs
//! as `base_os` (URL on this controller, sha256, version, test window), so
//! it is signed like the rest of the config and pushed by long-poll.
//!
//! `device set-config` keeps the current `base_os` when the new document
//! has no `base_os` key ([`carry_base_os`]; `base_os: null` removes it).
//!
//! Bounded: an artifact above [`crate::Limits::max_base_os_bytes`] is
//! refused while it streams in, and at most [`crate::Limits::base_os_kept`]
//! are kept: publishing another deletes the oldest that no config names,
//! or is refused when every one is in use.
//!
//! With PostgreSQL replicas the file lives in the state dir of the replica
//! that took it: give the replicas a shared `base-os/` directory.

mod artifacts;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use outpost_api::config::duration_text;
use outpost_api::BaseOsConfig;
use serde::{Deserialize, Serialize};

use crate::db::BaseOsRecord;
use crate::error::ControllerError;
use crate::reply::Failure;
use crate::state::{ConfigSet, Controller};

/// The artifacts' directory under the state dir.
pub const DIR: &str = "base-os";
/// Body bytes read after a refused upload (so the client sees the answer).
const DRAIN_BYTES: u64 = 64 << 20;
/// Longest that takes.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// What `POST /v1/base-os/check` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishCheck {
    /// The largest artifact taken, bytes.
    pub max_bytes: u64,
}

/// Query of `POST /v1/base-os` (the body is the artifact).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PublishQuery {
    /// Version string the devices report.
    pub version: String,
    /// Comma-separated device names or UUIDs.
    #[serde(default)]
    pub devices: Option<String>,
    /// Every device that has a config.
    #[serde(default)]
    pub all: bool,
    /// Test window (`600s`); EVE's default when absent.
    #[serde(default)]
    pub test_window: Option<String>,
    /// Fallback when the controller is unreachable (`300s`); EVE's default when absent.
    #[serde(default)]
    pub fallback: Option<String>,
}

/// Body of `POST /v1/base-os/retry`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RetryRequest {
    /// Device names or UUIDs.
    #[serde(default)]
    pub devices: Vec<String>,
    /// Every device whose config names a base OS.
    #[serde(default)]
    pub all: bool,
}

/// One stored artifact as `base-os list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactView {
    /// The stored record.
    #[serde(flatten)]
    pub record: BaseOsRecord,
    /// Names of the devices whose current config names it.
    pub devices: Vec<String>,
}

/// What `base-os publish` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The artifact.
    pub artifact: BaseOsRecord,
    /// The URL the devices fetch it from.
    pub url: String,
    /// The configs set (one per device).
    pub configs: Vec<ConfigSet>,
    /// Devices left out (`--all`): no config set yet.
    pub skipped: Vec<String>,
}

/// The `base_os` of a publish, before the artifact is known.
#[derive(Clone, Debug)]
struct Plan {
    version: String,
    targets: Vec<(String, String)>,
    test_window: Duration,
    fallback: Duration,
}

fn duration(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, Failure> {
    match text {
        None => Ok(default),
        Some(t) => duration_text::parse(t)
            .map_err(|e| Failure::bad_request(format!("base-os publish: --{field} {t:?}: {e}"))),
    }
}

impl Controller {
    /// The artifacts' directory.
    pub fn base_os_dir(&self) -> PathBuf {
        self.state.root().join(DIR)
    }

    pub(crate) fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.base_os_dir().join(format!("{sha256}.squashfs"))
    }

    /// The URL devices fetch artifact `sha256` from.
    fn artifact_url(&self, sha256: &str) -> crate::Result<String> {
        let server = self.db.settings()?.server;
        Ok(format!(
            "https://{server}{}/base-os/{sha256}",
            outpost_api::cloud::API_PREFIX
        ))
    }

    /// (UUID, name) of the devices `keys` name, or of every device.
    fn targets(&self, keys: &[String], all: bool) -> Result<Vec<(String, String)>, Failure> {
        if all != keys.is_empty() {
            return Err(Failure::bad_request(
                "name the devices (--device) or --all, not both and not neither",
            ));
        }
        let mut out = Vec::new();
        if all {
            for s in self.slots() {
                let r = s.record();
                out.push((r.uuid, r.name));
            }
        } else {
            for k in keys {
                let r = self.resolve(k)?.record();
                if !out.iter().any(|(u, _)| *u == r.uuid) {
                    out.push((r.uuid, r.name));
                }
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    fn plan(&self, q: &PublishQuery) -> Result<Plan, Failure> {
        let keys: Vec<String> = q
            .devices
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        let targets = self.targets(&keys, q.all)?;
        let plan = Plan {
            version: q.version.clone(),
            targets,
            test_window: duration(
                "test-window",
                q.test_window.as_deref(),
                Duration::from_secs(600),
            )?,
            fallback: duration("fallback", q.fallback.as_deref(), Duration::from_secs(300))?,
        };
        // Everything but the artifact can be checked before it is read.
        let mut problems = Vec::new();
        outpost_api::baseos::validate_base_os(
            &plan.config("a".repeat(64), "http://x/y", 0),
            &mut problems,
        );
        if let Some(p) = problems.first() {
            return Err(Failure::bad_request(format!(
                "base-os publish refused, nothing stored: {}: {}",
                p.path, p.message
            )));
        }
        Ok(plan)
    }

    /// Streams `body` into the artifact store (hashing it, at most
    /// `max_base_os_bytes`), then names it in the configs of the devices
    /// `q` targets. Nothing is stored when the query is wrong.
    pub async fn publish_base_os(
        self: &Arc<Self>,
        q: PublishQuery,
        body: Body,
    ) -> Result<Published, Failure> {
        let mut stream = body.into_data_stream();
        let out = self.publish_from(q, &mut stream).await;
        if out.is_err() {
            // Read what the client still sends (bounded), so it sees the
            // answer instead of a reset connection.
            let drain = async {
                let mut left = DRAIN_BYTES;
                while let Some(Ok(chunk)) = stream.next().await {
                    left = left.saturating_sub(chunk.len() as u64);
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        }
        out
    }

    /// What `base-os publish` checks before it sends the artifact: the
    /// query is refused as the upload would be; else the size limit.
    pub async fn check_publish(self: &Arc<Self>, q: PublishQuery) -> Result<PublishCheck, Failure> {
        let plan = self.plan(&q)?;
        self.check_configs(&q, &plan).await?;
        Ok(PublishCheck {
            max_bytes: self.limits.max_base_os_bytes,
        })
    }

    async fn publish_from(
        self: &Arc<Self>,
        q: PublishQuery,
        stream: &mut axum::body::BodyDataStream,
    ) -> Result<Published, Failure> {
        let plan = self.plan(&q)?;
        self.check_configs(&q, &plan).await?;
        let record = self.receive_artifact(&plan.version, stream).await?;
        let _ops = self.ops.lock().await;
        let sha = record.sha256.clone();
        let (url, configs, skipped) = {
            let (plan, sha) = (plan.clone(), sha.clone());
            self.blocking(move |c| {
                let url = c.artifact_url(&sha)?;
                let (set, skipped) = c.rewrite_base_os(&plan.targets, !q.all, &mut |old| {
                    Some(plan.config(sha.clone(), &url, old.map_or(0, |o| o.retry)))
                })?;
                Ok((url, set, skipped))
            })
            .await?
        };
        let configs = self.published(configs);
        tracing::info!(sha256 = %sha, version = %plan.version, devices = configs.len(),
            skipped = skipped.len(), "base OS published");
        Ok(Published {
            artifact: record,
            url,
            configs,
            skipped,
        })
    }

    /// Named devices must have a config to add `base_os` to.
    async fn check_configs(self: &Arc<Self>, q: &PublishQuery, plan: &Plan) -> Result<(), Failure> {
        if !q.all {
            let targets = plan.targets.clone();
            self.blocking(move |c| {
                let uuids: Vec<String> = targets.iter().map(|(u, _)| u.clone()).collect();
                let with: HashSet<String> =
                    c.db.configs_of(&uuids)?
                        .into_iter()
                        .map(|(u, _)| u)
                        .collect();
                let without: Vec<&str> = targets
                    .iter()
                    .filter(|(u, _)| !with.contains(u))
                    .map(|(_, n)| n.as_str())
                    .collect();
                if without.is_empty() {
                    return Ok(());
                }
                Err(ControllerError::Invalid(format!(
                    "base-os publish refused, nothing stored: device(s) {} have no config yet: \
                     set one with `device set-config` first",
                    without.join(", ")
                )))
            })
            .await?;
        }
        Ok(())
    }

    /// Bumps `base_os.retry` in the configs of the targeted devices (a
    /// version that failed on a device is tried again).
    pub async fn retry_base_os(
        self: &Arc<Self>,
        req: RetryRequest,
    ) -> Result<Vec<ConfigSet>, Failure> {
        let targets = self.targets(&req.devices, req.all)?;
        let _ops = self.ops.lock().await;
        let strict = !req.all;
        let (set, skipped) = self
            .blocking(move |c| {
                c.rewrite_base_os(&targets, false, &mut |old| {
                    old.map(|o| BaseOsConfig {
                        retry: o.retry.saturating_add(1),
                        ..o.clone()
                    })
                })
            })
            .await?;
        if strict && !skipped.is_empty() {
            // Those with one were bumped already; say which were not.
            tracing::warn!(devices = ?skipped, "base-os retry: no base OS in their config");
            if set.is_empty() {
                return Err(Failure::bad_request(format!(
                    "base-os retry: no base OS is published to {}",
                    skipped.join(", ")
                )));
            }
        }
        Ok(self.published(set))
    }

    /// Publishes stored configs to the devices' long-polls.
    fn published(&self, set: Vec<(String, String, crate::db::ConfigRecord)>) -> Vec<ConfigSet> {
        set.into_iter()
            .map(|(uuid, name, record)| {
                self.publish(&uuid, &record);
                ConfigSet::new(uuid, name, &record)
            })
            .collect()
    }

    /// Sets `base_os` to `change(current base_os)` in the current config of
    /// each target, in one transaction (blocking). A target without a
    /// config, or for which `change` gives `None`, is skipped and named in
    /// the second list, or is an error when `strict`.
    #[allow(clippy::type_complexity)]
    fn rewrite_base_os(
        &self,
        targets: &[(String, String)],
        strict: bool,
        change: &mut dyn FnMut(Option<&BaseOsConfig>) -> Option<BaseOsConfig>,
    ) -> crate::Result<(Vec<(String, String, crate::db::ConfigRecord)>, Vec<String>)> {
        let uuids: Vec<String> = targets.iter().map(|(u, _)| u.clone()).collect();
        let current: HashMap<String, crate::db::ConfigRecord> =
            self.db.configs_of(&uuids)?.into_iter().collect();
        let mut texts = HashMap::new();
        let mut skipped = Vec::new();
        for (uuid, name) in targets {
            let Some(record) = current.get(uuid) else {
                skipped.push(name.clone());
                continue;
            };
            let mut doc = record.document.clone();
            let old: Option<BaseOsConfig> = doc
                .get("base_os")
                .and_then(|b| serde_json::from_value(b.clone()).ok());
            let Some(new) = change(old.as_ref()) else {
                skipped.push(name.clone());
                continue;
            };
            doc["base_os"] = serde_json::to_value(&new)
                .map_err(|e| ControllerError::Invalid(format!("base_os for device {name}: {e}")))?;
            texts.insert(uuid.clone(), doc.to_string());
        }
        if strict && !skipped.is_empty() {
            return Err(ControllerError::Invalid(format!(
                "device(s) {} have no config yet: set one with `device set-config` first (nothing changed)",
                skipped.join(", ")
            )));
        }
        let uuids: Vec<String> = texts.keys().cloned().collect();
        let stored = self.db.set_configs(&uuids, &mut |uuid, g| {
            crate::state::make_record(self, uuid, &texts[uuid], g)
        })?;
        let names: HashMap<&String, &String> = targets.iter().map(|(u, n)| (u, n)).collect();
        let mut out: Vec<_> = stored
            .into_iter()
            .map(|(uuid, r)| {
                let name = names.get(&uuid).map(|n| n.to_string()).unwrap_or_default();
                (uuid, name, r)
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok((out, skipped))
    }
}

/// `text` with the `base_os` of the device's current config carried over
/// (as JSON text), when `text` has no `base_os` key and the current config
/// has one: `set-config` keeps what `base-os publish` set, and
/// `base_os: null` removes it. `None`: sign `text` as it is.
pub(crate) fn carry_base_os(
    text: &str,
    current: Option<&crate::db::ConfigRecord>,
) -> Option<String> {
    let base_os = current?.document.get("base_os").filter(|b| !b.is_null())?;
    let mut doc = crate::document::load(text).ok()?;
    let top = doc.as_object_mut()?;
    if top.contains_key("base_os") {
        return None;
    }
    top.insert("base_os".into(), base_os.clone());
    Some(doc.to_string())
}

impl Plan {
    fn config(&self, sha256: String, url: &str, retry: u32) -> BaseOsConfig {
        BaseOsConfig {
            version: self.version.clone(),
            url: url.to_owned(),
            sha256,
            retry,
            test_window: self.test_window,
            fallback: self.fallback,
        }
    }
}
