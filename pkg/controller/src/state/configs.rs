//! Setting a device's config: validate, assign the generation, sign,
//! store, then wake the device's long-polls.

use std::sync::Arc;

use axum::body::Bytes;
use outpost_api::cloud::ConfigPayload;
use serde::{Deserialize, Serialize};

use super::Controller;
use crate::db::ConfigRecord;
use crate::document;
use crate::error::ControllerError;
use crate::reply::Failure;
use crate::signing::now_rfc3339;

/// A device's current config as served: the envelope JSON, ready to send.
#[derive(Debug)]
pub struct CurrentConfig {
    /// Generation.
    pub generation: u64,
    /// Lowercase hex SHA-256 of the payload (unquoted ETag).
    pub etag: String,
    /// `SignedEnvelope` JSON.
    pub body: Bytes,
}

impl CurrentConfig {
    /// From a stored record.
    pub fn from_record(record: &ConfigRecord) -> Self {
        CurrentConfig {
            generation: record.generation,
            etag: record.etag.clone(),
            body: Bytes::from(serde_json::to_vec(&record.envelope).unwrap_or_default()),
        }
    }

    /// The quoted ETag header value.
    pub fn etag_header(&self) -> String {
        format!("\"{}\"", self.etag)
    }
}

/// What `device set-config` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSet {
    /// Device UUID.
    pub uuid: String,
    /// Device name.
    pub name: String,
    /// The generation assigned.
    pub generation: u64,
    /// App entries in the document.
    pub apps: usize,
    /// Apps the agent will reject (kept in the document).
    pub warnings: Vec<String>,
    /// Unquoted ETag of the new payload.
    pub etag: String,
}

/// Signs `text` (already checked) as generation `generation` of `uuid`.
pub(crate) fn make_record(
    c: &Controller,
    uuid: &str,
    text: &str,
    generation: u64,
) -> crate::Result<ConfigRecord> {
    let prepared = document::prepare(text, generation).map_err(ControllerError::BadDocument)?;
    let payload = ConfigPayload {
        device: Some(uuid.to_owned()),
        generation,
        issued_at: now_rfc3339(),
        config: prepared.document.clone(),
    };
    let signed = c.signing().signer.sign(&payload)?;
    Ok(ConfigRecord {
        generation,
        set_at: payload.issued_at,
        source: text.to_owned(),
        document: prepared.document,
        envelope: signed.envelope,
        etag: signed.etag,
        warnings: prepared.warnings,
    })
}

impl Controller {
    /// Publishes a stored config to the device's long-polls (never going
    /// back to an older generation if two changes race).
    pub(crate) fn publish(&self, uuid: &str, stored: &ConfigRecord) {
        let Some(slot) = self.slot(uuid) else {
            return;
        };
        let current = Arc::new(CurrentConfig::from_record(stored));
        slot.config.send_if_modified(|cur| {
            let newer = cur
                .as_ref()
                .is_none_or(|c| c.generation < current.generation);
            if newer {
                *cur = Some(current.clone());
            }
            newer
        });
    }

    /// Validates, signs and stores `text` as the config of device `key`
    /// (UUID or name). A document-level problem refuses it (400) and
    /// nothing changes.
    pub async fn set_config(
        self: &Arc<Self>,
        key: &str,
        text: String,
    ) -> Result<ConfigSet, Failure> {
        let slot = self.resolve(key)?;
        let record = slot.record();
        // refuse a bad document before touching the database
        document::prepare(&text, 1).map_err(|e| {
            Failure::bad_request(format!(
                "config for device {} refused, nothing changed: {e}",
                record.name
            ))
        })?;
        let _ops = self.ops.lock().await;
        let uuid = record.uuid.clone();
        let stored = self
            .blocking(move |c| {
                let old = c.db.config(&uuid)?;
                let text = crate::baseos::carry_base_os(&text, old.as_ref()).unwrap_or(text);
                crate::store::set_config(&*c.db, &uuid, &mut |u, g| make_record(c, u, &text, g))
            })
            .await?;
        let Some(stored) = stored else {
            return Err(Failure::not_found(
                format!("device {} was deleted meanwhile", record.name),
                Vec::new(),
            ));
        };
        self.publish(&record.uuid, &stored);
        let set = ConfigSet::new(record.uuid, record.name, &stored);
        tracing::info!(device = %set.name, uuid = %set.uuid, generation = set.generation,
            apps = set.apps, rejected_apps = set.warnings.len(), "config set");
        Ok(set)
    }

    /// [`Controller::set_config`] on every device at once, in one
    /// transaction (each device gets its own signed payload and its own
    /// next generation).
    pub async fn set_config_all(self: &Arc<Self>, text: String) -> Result<Vec<ConfigSet>, Failure> {
        document::prepare(&text, 1)
            .map_err(|e| Failure::bad_request(format!("config refused, nothing changed: {e}")))?;
        let _ops = self.ops.lock().await;
        let mut devices = self.device_names();
        devices.sort_by(|a, b| a.1.cmp(&b.1));
        let uuids: Vec<String> = devices.iter().map(|(u, _)| u.clone()).collect();
        let stored = self
            .blocking(move |c| {
                let old: std::collections::HashMap<String, ConfigRecord> =
                    c.db.configs_of(&uuids)?.into_iter().collect();
                c.db.set_configs(&uuids, &mut |uuid, g| {
                    let carried = crate::baseos::carry_base_os(&text, old.get(uuid));
                    make_record(c, uuid, carried.as_deref().unwrap_or(&text), g)
                })
            })
            .await?;
        let mut out = Vec::with_capacity(stored.len());
        for (uuid, record) in &stored {
            self.publish(uuid, record);
            let name = devices
                .iter()
                .find(|(u, _)| u == uuid)
                .map(|(_, n)| n.clone())
                .unwrap_or_default();
            out.push(ConfigSet::new(uuid.clone(), name, record));
        }
        tracing::info!(devices = out.len(), "config set on every device");
        Ok(out)
    }
}

impl ConfigSet {
    pub(crate) fn new(uuid: String, name: String, stored: &ConfigRecord) -> Self {
        ConfigSet {
            uuid,
            name,
            generation: stored.generation,
            apps: stored.document["apps"].as_array().map_or(0, Vec::len),
            warnings: stored.warnings.clone(),
            etag: stored.etag.clone(),
        }
    }
}
