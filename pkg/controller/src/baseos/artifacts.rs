//! The artifact store of base OS publishing: files under
//! `<state>/base-os/`, records in the store, at most
//! [`crate::Limits::base_os_kept`] kept.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::ArtifactView;
use crate::db::BaseOsRecord;
use crate::error::ControllerError;
use crate::reply::Failure;
use crate::signing::now_rfc3339;
use crate::state::Controller;

impl Controller {
    /// Every stored artifact with the devices whose config names it.
    pub async fn base_os_list(self: &Arc<Self>) -> Result<Vec<ArtifactView>, Failure> {
        let names: HashMap<String, String> = self.device_names().into_iter().collect();
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

    pub(super) async fn receive_artifact(
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
