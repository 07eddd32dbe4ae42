//! Base OS images published to devices (`base-os publish`): the update
//! artifact (the root squashfs `outpost-mkimage` builds) is streamed into
//! `<state>/base-os/<sha256>.squashfs` while it is hashed, recorded in the
//! store, served to devices over the device API
//! (`GET /api/v1/base-os/<sha256>`, device certificates only,
//! [`crate::server::baseos`]), and named in the targeted devices' configs
//! as `base_os` (URL on this controller, sha256, version, test window), so
//! it is signed like the rest of the config and pushed by long-poll.
//!
//! Bounded: an artifact above [`crate::Limits::max_base_os_bytes`] is
//! refused while it streams in, and at most [`crate::Limits::base_os_kept`]
//! are kept: publishing another deletes the oldest that no config names,
//! or is refused when every one is in use.
//!
//! With PostgreSQL replicas the file lives in the state dir of the replica
//! that took it: give the replicas a shared `base-os/` directory.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use outpost_api::config::duration_text;
use outpost_api::BaseOsConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::db::BaseOsRecord;
use crate::error::ControllerError;
use crate::reply::Failure;
use crate::signing::now_rfc3339;
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

    fn artifact_path(&self, sha256: &str) -> PathBuf {
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

    /// Every stored artifact with the devices whose config names it.
    pub async fn base_os_list(self: &Arc<Self>) -> Result<Vec<ArtifactView>, Failure> {
        let names: HashMap<String, String> = self
            .slots()
            .iter()
            .map(|s| {
                let r = s.record();
                (r.uuid, r.name)
            })
            .collect();
        self.blocking(move |c| {
            let users = c.artifact_users()?;
            let mut out: Vec<ArtifactView> =
                c.db.base_os_artifacts()?
                    .into_iter()
                    .map(|record| {
                        let mut devices: Vec<String> = users
                            .get(&record.sha256)
                            .into_iter()
                            .flatten()
                            .map(|u| names.get(u).cloned().unwrap_or_else(|| u.clone()))
                            .collect();
                        devices.sort();
                        ArtifactView { record, devices }
                    })
                    .collect();
            out.sort_by(|a, b| a.record.added_at.cmp(&b.record.added_at));
            Ok(out)
        })
        .await
    }

    /// sha256 → UUIDs of the devices whose current config names it.
    fn artifact_users(&self) -> crate::Result<HashMap<String, Vec<String>>> {
        let mut users: HashMap<String, Vec<String>> = HashMap::new();
        for (uuid, c) in self.db.configs()? {
            if let Some(sha) = c.document["base_os"]["sha256"].as_str() {
                users.entry(sha.to_owned()).or_default().push(uuid);
            }
        }
        Ok(users)
    }

    /// The file of a stored artifact, `None` when no record names it.
    pub async fn artifact_file(self: &Arc<Self>, sha256: &str) -> Result<Option<PathBuf>, Failure> {
        let sha = sha256.to_owned();
        let known = self
            .blocking(move |c| {
                Ok(c.db
                    .base_os_artifacts()?
                    .into_iter()
                    .any(|r| r.sha256 == sha))
            })
            .await?;
        Ok(known.then(|| self.artifact_path(sha256)))
    }

    /// Makes room for one more artifact (blocking): deletes the oldest that
    /// no config names while `base_os_kept` are stored; refuses when all are in use.
    fn make_room(&self, incoming: &str) -> crate::Result<()> {
        let mut stored = self.db.base_os_artifacts()?;
        if stored.iter().any(|r| r.sha256 == incoming) {
            return Ok(());
        }
        let users: HashSet<String> = self.artifact_users()?.into_keys().collect();
        stored.sort_by(|a, b| a.added_at.cmp(&b.added_at));
        let keep = self.limits.base_os_kept.max(1);
        let mut count = stored.len();
        for r in &stored {
            if count < keep {
                break;
            }
            if users.contains(&r.sha256) {
                continue;
            }
            self.db.delete_base_os(&r.sha256)?;
            let _ = std::fs::remove_file(self.artifact_path(&r.sha256));
            tracing::info!(sha256 = %r.sha256, version = %r.version, "base OS artifact deleted (unused, over the limit)");
            count -= 1;
        }
        if count >= keep {
            return Err(ControllerError::Invalid(format!(
                "{count} base OS artifacts are stored (at most {keep}) and every one is named by a device config: \
                 publish another version to those devices first (nothing stored)"
            )));
        }
        Ok(())
    }

    async fn receive_artifact(
        self: &Arc<Self>,
        version: &str,
        body: &mut axum::body::BodyDataStream,
    ) -> Result<BaseOsRecord, Failure> {
        let dir = self.base_os_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Failure::internal(format!("creating {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".upload-{}", uuid::Uuid::new_v4()));
        let outcome = self.stream_to(&tmp, body).await;
        let (sha256, size) = match outcome {
            Ok(x) => x,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let record = BaseOsRecord {
            sha256: sha256.clone(),
            version: version.to_owned(),
            size,
            added_at: now_rfc3339(),
        };
        let (path, r, t) = (self.artifact_path(&sha256), record.clone(), tmp.clone());
        let stored = self
            .blocking(move |c| {
                c.make_room(&r.sha256)?;
                std::fs::rename(&t, &path).map_err(ControllerError::io("storing", &path))?;
                c.db.put_base_os(&r)?;
                Ok(())
            })
            .await;
        if let Err(e) = stored {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok(record)
    }

    /// Writes `body` to `path`, hashing it; refuses more than the limit.
    async fn stream_to(
        &self,
        path: &std::path::Path,
        stream: &mut axum::body::BodyDataStream,
    ) -> Result<(String, u64), Failure> {
        let limit = self.limits.max_base_os_bytes;
        let io = |e: std::io::Error| Failure::internal(format!("writing {}: {e}", path.display()));
        let mut file = tokio::fs::File::create(path).await.map_err(io)?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| Failure::bad_request(format!("reading the base OS artifact: {e}")))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(Failure::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "base OS artifact refused: larger than the {limit} bytes allowed (serve --base-os-max-bytes)"
                    ),
                ));
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        if size == 0 {
            return Err(Failure::bad_request(
                "base OS artifact refused: it is empty",
            ));
        }
        file.sync_all().await.map_err(io)?;
        Ok((hex::encode(hash.finalize()), size))
    }
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
