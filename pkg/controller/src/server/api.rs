//! The device API (`/api/v1/…`, see `docs/api.md`): routing and the
//! per-endpoint authorization.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use outpost_api::cloud::{CertsResponse, DeviceInfo, DeviceMetrics, RegisterRequest, BATCH_HEADER};

use super::body::{read_body, read_json_body};
use super::config_poll::get_config;
use super::peer::Peer;
use crate::reply::Failure;
use crate::state::{Caller, Controller};

/// The device API router.
pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/api/v1/ping", get(ping))
        .route("/api/v1/certs", get(certs))
        .route("/api/v1/certs/{fingerprint}", get(cert_by_fingerprint))
        .route("/api/v1/register", post(register))
        .route("/api/v1/devices/{uuid}/config", get(get_config))
        .route("/api/v1/devices/{uuid}/info", post(info))
        .route("/api/v1/devices/{uuid}/metrics", post(metrics))
        .route("/api/v1/devices/{uuid}/logs", post(logs))
        .route(
            "/api/v1/devices/{uuid}/cert",
            post(crate::certs::renew_handler),
        )
        .route("/api/v1/base-os/{sha256}", get(super::baseos::download))
        .fallback(not_found)
        .with_state(controller)
}

async fn not_found() -> Failure {
    Failure::not_found(
        "no such endpoint (the API is under /api/v1/, see docs/api.md)",
        Vec::new(),
    )
}

async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn certs(State(c): State<Arc<Controller>>) -> Json<CertsResponse> {
    Json(CertsResponse {
        signing_cert_pem: c.signing_cert_pem().to_owned(),
    })
}

async fn cert_by_fingerprint(
    State(c): State<Arc<Controller>>,
    Path(fp): Path<String>,
) -> Result<Json<CertsResponse>, Failure> {
    match c.signing_cert_by_fingerprint(&fp) {
        Some(pem) => Ok(Json(CertsResponse {
            signing_cert_pem: pem.to_owned(),
        })),
        None => Err(Failure::not_found(
            format!(
                "no signing certificate {fp} (unknown, or its overlap after a rotation has ended)"
            ),
            Vec::new(),
        )),
    }
}

async fn register(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    match c.caller(peer.fingerprint.as_deref()) {
        Caller::Onboarding => {}
        Caller::Anonymous => {
            return Err(Failure::unauthorized(
                "registration needs the onboarding certificate (none was presented)",
            ))
        }
        Caller::Unknown => {
            return Err(Failure::unauthorized(
                "registration needs the onboarding certificate (this certificate is not it)",
            ))
        }
        Caller::Device(slot) => {
            return Err(Failure::forbidden(format!(
                "device {} may not register; only the onboarding certificate may",
                slot.uuid()
            )))
        }
    }
    let req: RegisterRequest = read_json_body(&c, &headers, body, "RegisterRequest").await?;
    let done = c.register(req).await?;
    Ok((done.status, Json(done.response)).into_response())
}

/// A device's JSON upload: authorized for `uuid`, size and time bounded.
async fn device_json<T: serde::de::DeserializeOwned>(
    c: &Arc<Controller>,
    peer: &Peer,
    uuid: &str,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<(Arc<crate::state::DeviceSlot>, T), Failure> {
    let slot = c.authorize(peer.fingerprint.as_deref(), uuid).await?;
    let value = read_json_body(c, headers, body, what).await?;
    Ok((slot, value))
}

async fn info(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Failure> {
    let (slot, info): (_, DeviceInfo) =
        device_json(&c, &peer, &uuid, &headers, body, "DeviceInfo").await?;
    c.store_info(&slot, info).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn metrics(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, Failure> {
    let (slot, metrics): (_, DeviceMetrics) =
        device_json(&c, &peer, &uuid, &headers, body, "DeviceMetrics").await?;
    c.store_metrics(&slot, metrics).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logs(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let slot = c.authorize(peer.fingerprint.as_deref(), &uuid).await?;
    let batch: u64 = headers
        .get(BATCH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Failure::bad_request(format!(
                "header {BATCH_HEADER} with the batch number is required"
            ))
        })?;
    let l = &c.limits;
    let gz = read_body(&headers, body, l.max_log_body, l.body_timeout, &c.stats).await?;
    let max = l.max_log_decompressed;
    let lines = tokio::task::spawn_blocking(move || crate::state::decode_log_batch(&gz, max))
        .await
        .map_err(Failure::internal)?;
    let lines = match lines {
        Err(f) if f.status == StatusCode::PAYLOAD_TOO_LARGE => {
            crate::limits::Stats::bump(&c.stats.bodies_too_large);
            return Err(f);
        }
        other => other?,
    };
    let ack = c.store_logs(&slot, batch, lines).await?;
    Ok(Json(ack).into_response())
}
