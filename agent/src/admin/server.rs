//! The admin API server: JSON over HTTP/1 on a unix socket that only root
//! can open (mode 0600, in a 0700 directory).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::types::{ApiError, CounterBumped, ExecRequest, ExecResponse, Info, NotFound};
use crate::daemon::snapshot::{Command, CounterKind, Event, Handle, Snapshot};

/// Most time an exec may ask for.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(600);

/// Serves the admin API on `socket` until the task is dropped.
pub async fn serve(
    handle: Handle,
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
        .route("/v1/apps/{app}/pause", post(pause))
        .route("/v1/apps/{app}/stop", post(stop))
        .route("/v1/apps/{app}/start", post(start))
        .route("/v1/apps/{app}/resume", post(resume))
        .route("/v1/apps/{app}/exec", post(exec))
        .route("/v1/check", {
            let services = services.clone();
            get(move |st: State<Handle>| check(st, services.view()))
        })
        .route("/v1/networks", get(networks))
        .with_state(handle)
        .merge(super::services::routes(services));
    axum::serve(listener, app).await.context("admin API server")
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

fn not_found(snap: &Snapshot, app: &str) -> Response {
    let suggestions = snap.suggest(app);
    let body = NotFound {
        error: format!("no app named {app:?}"),
        suggestions,
    };
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn info(State(h): State<Handle>) -> Json<Info> {
    let mut info = h.now().info();
    info.base_os = crate::daemon::baseos::view(&h.layout);
    Json(info)
}

async fn list(State(h): State<Handle>) -> Json<Vec<outpost_api::AppStatus>> {
    Json(h.now().statuses())
}

async fn status(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    let snap = h.now();
    match snap.find(&app) {
        Some(st) => Json(st).into_response(),
        None => not_found(&snap, &app),
    }
}

/// Sends the loop the command `make` builds for app `app` (by UUID) and
/// turns its answer into a response with `done` (the app's display name and
/// the value); a refusal gets `refused`.
async fn ask<T>(
    h: Handle,
    app: &str,
    make: impl FnOnce(String, tokio::sync::oneshot::Sender<Result<T, String>>) -> Command,
    refused: StatusCode,
    done: impl FnOnce(String, T) -> Response,
) -> Response {
    let snap = h.now();
    let Some(st) = snap.find(app) else {
        return not_found(&snap, app);
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if !h.tell(Event::Command(make(st.uuid.clone(), reply))).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping");
    }
    match answer.await {
        Ok(Ok(v)) => done(st.display_name, v),
        Ok(Err(e)) => error(refused, e),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping"),
    }
}

/// Asks the loop to bump a local counter and waits for its answer (the
/// loop takes commands even while a pass runs).
async fn bump(h: Handle, app: String, kind: CounterKind) -> Response {
    let make = |uuid, reply| Command::Bump { uuid, kind, reply };
    ask(
        h,
        &app,
        make,
        StatusCode::INTERNAL_SERVER_ERROR,
        |app, v| {
            Json(CounterBumped {
                app,
                local_counter: v,
            })
            .into_response()
        },
    )
    .await
}

async fn restart(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    bump(h, app, CounterKind::Restart).await
}

async fn purge(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    bump(h, app, CounterKind::Purge).await
}

/// Asks the loop to freeze or thaw the app's task and waits for the answer.
async fn pause_or_resume(h: Handle, app: String, pause: bool) -> Response {
    let make = |uuid, reply| Command::Pause { uuid, pause, reply };
    ask(h, &app, make, StatusCode::CONFLICT, |app, task_id| {
        Json(super::types::PauseDone {
            app,
            task_id,
            paused: pause,
        })
        .into_response()
    })
    .await
}

/// Asks the loop to override the app's `activate` until the next config.
async fn activate(h: Handle, app: String, activate: bool) -> Response {
    let make = |uuid, reply| Command::Activate {
        uuid,
        activate,
        reply,
    };
    ask(h, &app, make, StatusCode::CONFLICT, |app, generation| {
        Json(super::types::ActivateOverridden {
            app,
            activate,
            generation,
        })
        .into_response()
    })
    .await
}

async fn stop(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    activate(h, app, false).await
}

async fn start(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    activate(h, app, true).await
}

async fn pause(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    pause_or_resume(h, app, true).await
}

async fn resume(State(h): State<Handle>, UrlPath(app): UrlPath<String>) -> Response {
    pause_or_resume(h, app, false).await
}

async fn exec(
    State(h): State<Handle>,
    UrlPath(app): UrlPath<String>,
    Json(req): Json<ExecRequest>,
) -> Response {
    let snap = h.now();
    let Some(st) = snap.find(&app) else {
        return not_found(&snap, &app);
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
    match h.runtime.exec(&task, &req.args, timeout).await {
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

async fn networks(State(h): State<Handle>) -> Json<Vec<super::types::NetworkView>> {
    Json(h.now().networks())
}

async fn check(
    State(h): State<Handle>,
    services: crate::daemon::services::ServicesView,
) -> Response {
    let mut checks = crate::daemon::checks::run(&h).await;
    checks.push(services.check());
    Json(checks).into_response()
}
