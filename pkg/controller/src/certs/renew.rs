//! `POST /api/v1/devices/<uuid>/cert`: a device renews its certificate,
//! authenticated by its current one, for the same key or a new one.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use outpost_api::cloud::{RenewRequest, RenewResponse};

use crate::db::RenewOutcome;
use crate::pki::DeviceCsr;
use crate::reply::Failure;
use crate::server::{read_json_body, Peer};
use crate::state::{Controller, DeviceSlot};

/// The renewal handler.
pub async fn renew_handler(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<RenewResponse>, Failure> {
    let slot = c.authorize(peer.fingerprint.as_deref(), &uuid).await?;
    let req: RenewRequest = read_json_body(&c, &headers, body, "RenewRequest").await?;
    c.renew_cert(&slot, &req.csr_pem).await.map(Json)
}

impl Controller {
    /// Issues device `slot` a new certificate for the key of `csr_pem`
    /// (its key, or a new one: the old key's certificates stop counting).
    pub async fn renew_cert(
        self: &Arc<Self>,
        slot: &DeviceSlot,
        csr_pem: &str,
    ) -> Result<RenewResponse, Failure> {
        let csr = DeviceCsr::from_pem(csr_pem).map_err(Failure::bad_request)?;
        let public_key = csr.public_key_hex();
        let uuid = slot.uuid();
        let new_key = slot.record().public_key.as_deref() != Some(public_key.as_str());
        let _ops = self.ops.lock().await;
        let outcome = {
            let uuid = uuid.clone();
            self.blocking(move |c| {
                let validity = c.certs.device_validity();
                c.db.renew_cert(&uuid, &public_key, &mut |u| csr.issue(&c.ca, u, validity))
            })
            .await?
        };
        let (record, issued) = match outcome {
            RenewOutcome::Renewed(r, i) => (r, i),
            RenewOutcome::Gone => {
                return Err(Failure::unauthorized(format!("device {uuid} was deleted")))
            }
            RenewOutcome::Revoked(r) => {
                return Err(Failure::forbidden(format!(
                    "device {} ({uuid}) is revoked; it gets no certificate",
                    r.name
                )))
            }
        };
        self.insert_slot(record.clone());
        crate::limits::Stats::bump(&self.stats.certs_renewed);
        let not_after = record.cert_not_after.clone().unwrap_or_default();
        tracing::info!(
            device = %record.name,
            uuid = %uuid,
            serial = %issued.serial,
            %not_after,
            new_key,
            "device certificate renewed"
        );
        Ok(RenewResponse {
            cert_pem: issued.cert_pem,
            not_after,
        })
    }
}
