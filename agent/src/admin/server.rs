//! The admin API server: JSON over HTTP/1 on a unix socket that only root
//! can open (mode 0600, in a 0700 directory).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::types::{ApiError, CounterBumped, ExecRequest, ExecResponse, Info, NotFound};
use crate::daemon::state::{CounterKind, Shared};

/// Most time an exec may ask for.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(600);

/// Serves the admin API on `socket` until the task is dropped.
pub async fn serve(
    shared: Arc<Shared>,
    services: crate::daemon::services::Handle,
    socket: &Path,
) -> Result<()> {
    let dir = socket.parent().context("admin socket has no parent dir")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    let app = Router::new()
        .route("/v1/info", get(info))
        .route("/v1/apps", get(list))
        .route("/v1/apps/{app}", get(status))
        .route("/v1/apps/{app}/restart", post(restart))
        .route("/v1/apps/{app}/purge", post(purge))
        .route("/v1/apps/{app}/exec", post(exec))
        .route("/v1/check", {
            let services = services.clone();
            get(move |st: State<Arc<Shared>>| check(st, services.view()))
        })
        .route("/v1/networks", get(networks))
        .with_state(shared)
        .merge(super::services::routes(services));
    axum::serve(listener, app).await.context("admin API server")
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

fn not_found(shared: &Shared, app: &str) -> Response {
    let suggestions = shared.suggest(app);
    let body = NotFound {
        error: format!("no app named {app:?}"),
        suggestions,
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn info(State(s): State<Arc<Shared>>) -> Json<Info> {
    Json(s.info())
}

async fn list(State(s): State<Arc<Shared>>) -> Json<Vec<outpost_api::AppStatus>> {
    Json(s.statuses())
}

async fn status(State(s): State<Arc<Shared>>, UrlPath(app): UrlPath<String>) -> Response {
    match s.find(&app) {
        Some(st) => Json(st).into_response(),
        None => not_found(&s, &app),
    }
}

async fn bump(s: Arc<Shared>, app: String, kind: CounterKind) -> Response {
    let Some(st) = s.find(&app) else {
        return not_found(&s, &app);
    };
    match s.bump_local_counter(&st.uuid, kind) {
        Ok(v) => Json(CounterBumped {
            app: st.display_name,
            local_counter: v,
        })
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

async fn restart(State(s): State<Arc<Shared>>, UrlPath(app): UrlPath<String>) -> Response {
    bump(s, app, CounterKind::Restart).await
}

async fn purge(State(s): State<Arc<Shared>>, UrlPath(app): UrlPath<String>) -> Response {
    bump(s, app, CounterKind::Purge).await
}

async fn exec(
    State(s): State<Arc<Shared>>,
    UrlPath(app): UrlPath<String>,
    Json(req): Json<ExecRequest>,
) -> Response {
    let Some(st) = s.find(&app) else {
        return not_found(&s, &app);
    };
    let Some(task) = st.domain.as_ref().map(|d| d.task_id.clone()) else {
        return error(
            StatusCode::CONFLICT,
            format!("app {} has no task ({})", st.display_name, st.state),
        );
    };
    if req.args.is_empty() {
        return error(StatusCode::BAD_REQUEST, "exec needs a command");
    }
    let timeout = Duration::from_millis(req.timeout_ms).min(MAX_EXEC_TIMEOUT);
    match s.runtime.exec(&task, &req.args, timeout).await {
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

async fn networks(State(s): State<Arc<Shared>>) -> Json<Vec<super::types::NetworkView>> {
    Json(s.networks())
}

async fn check(
    State(s): State<Arc<Shared>>,
    services: crate::daemon::services::ServicesView,
) -> Response {
    let mut checks = crate::daemon::checks::run(&s).await;
    checks.push(services.check());
    Json(checks).into_response()
}
