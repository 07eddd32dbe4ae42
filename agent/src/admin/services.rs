//! Admin API routes for the device services (`outpost svc …`), served from
//! the service supervisor's [`Handle`].

use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::types::{ApiError, ExecRequest, ExecResponse, NotFound};
use crate::daemon::services::{Handle, RestartError, ServicesView};

/// Most time a service exec may ask for.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(600);

/// `POST /v1/services/{name}/restart` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceRestarted {
    /// The service.
    pub service: String,
    /// Its new init PID.
    pub pid: u32,
}

/// The `/v1/services…` routes.
pub fn routes(handle: Handle) -> Router {
    Router::new()
        .route("/v1/services", get(list))
        .route("/v1/services/{name}", get(status))
        .route("/v1/services/{name}/restart", post(restart))
        .route("/v1/services/{name}/exec", post(exec))
        .with_state(handle)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

fn not_found(view: &ServicesView, name: &str) -> Response {
    let body = NotFound {
        error: format!("no service named {name:?}"),
        suggestions: view.suggest(name),
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn list(State(h): State<Handle>) -> Json<ServicesView> {
    Json(h.view())
}

async fn status(State(h): State<Handle>, UrlPath(name): UrlPath<String>) -> Response {
    let view = h.view();
    match view.find(&name) {
        Some(s) => Json(s.clone()).into_response(),
        None => not_found(&view, &name),
    }
}

async fn restart(State(h): State<Handle>, UrlPath(name): UrlPath<String>) -> Response {
    match h.restart(&name).await {
        Ok(pid) => Json(ServiceRestarted { service: name, pid }).into_response(),
        Err(RestartError::NotFound { name, suggestions }) => (
            StatusCode::NOT_FOUND,
            Json(NotFound {
                error: format!("no service named {name:?}"),
                suggestions,
            }),
        )
            .into_response(),
        Err(e @ RestartError::NotDeclared(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn exec(
    State(h): State<Handle>,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<ExecRequest>,
) -> Response {
    let view = h.view();
    let Some(s) = view.find(&name) else {
        return not_found(&view, &name);
    };
    if !s.is_running() {
        return error(
            StatusCode::CONFLICT,
            format!("service {name} is {}: nothing to exec in", s.state),
        );
    }
    if req.args.is_empty() {
        return error(StatusCode::BAD_REQUEST, "exec needs a command");
    }
    let timeout = Duration::from_millis(req.timeout_ms).min(MAX_EXEC_TIMEOUT);
    match h.exec(&name, &req.args, timeout).await {
        Ok(out) => Json(ExecResponse {
            exit_status: out.exit_status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            truncated: out.truncated,
        })
        .into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}
