//! Admin routes of base OS publishing (`docs/api.md`, "Base OS"):
//! `GET /v1/base-os`, `POST /v1/base-os?version=&devices=&all=&test_window=&fallback=`
//! with the artifact as the body (no body limit here: the controller's
//! `max_base_os_bytes` bounds it while it streams), `POST /v1/base-os/check`
//! with the same query and no body (what the CLI asks before it uploads),
//! `POST /v1/base-os/retry`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::baseos::{ArtifactView, PublishCheck, PublishQuery, Published, RetryRequest};
use crate::reply::Failure;
use crate::state::{ConfigSet, Controller};

/// The routes (merged into the admin router after its body limit).
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route(
            "/v1/base-os",
            get(list).post(publish).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/base-os/check", post(check))
        .route("/v1/base-os/retry", post(retry))
}

async fn list(State(c): State<Arc<Controller>>) -> Result<Json<Vec<ArtifactView>>, Failure> {
    Ok(Json(c.base_os_list().await?))
}

async fn publish(
    State(c): State<Arc<Controller>>,
    Query(q): Query<PublishQuery>,
    body: Body,
) -> Result<Json<Published>, Failure> {
    Ok(Json(c.publish_base_os(q, body).await?))
}

async fn check(
    State(c): State<Arc<Controller>>,
    Query(q): Query<PublishQuery>,
) -> Result<Json<PublishCheck>, Failure> {
    Ok(Json(c.check_publish(q).await?))
}

async fn retry(
    State(c): State<Arc<Controller>>,
    Json(req): Json<RetryRequest>,
) -> Result<Json<Vec<ConfigSet>>, Failure> {
    Ok(Json(c.retry_base_os(req).await?))
}
