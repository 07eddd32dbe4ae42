//! The web console, served only on the HTTPS admin listener
//! ([`crate::admin::https`]), never on the device port. Server-rendered
//! HTML, read-mostly: the device list, a device page (apps and states from
//! the last info, a log view that follows by long-polling, CPU/memory plots
//! as inline SVG) and a form to set a config from a file (the same
//! validation path as `device set-config`).
//!
//! Login takes an admin token and sets a session cookie ([`session`]);
//! POST forms carry the session's CSRF token. A read-only token can look
//! but not set configs.

pub mod html;
mod pages;
pub mod plot;
pub mod session;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Multipart, Path as UrlPath, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use crate::admin::server::LogsQuery;
use crate::admin::tokens::TokenStore;
use crate::reply::Failure;
use crate::state::Controller;
use session::{Session, Sessions};

const JS: &str = include_str!("../../assets/console.js");
const CSS: &str = include_str!("../../assets/console.css");
/// Longest wait of a follow request from the log view.
const FOLLOW_WAIT: u64 = 25;

/// Everything the console's handlers share.
#[derive(Clone)]
pub struct Console {
    controller: Arc<Controller>,
    tokens: TokenStore,
    sessions: Arc<Sessions>,
}

/// A logged-in request: its session (cookie checked, token still listed).
struct LoggedIn(Session);

impl FromRequestParts<Console> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let to_login = || Redirect::to("/console/login").into_response();
        let Some(id) = session::cookie(&parts.headers) else {
            return Err(to_login());
        };
        let Some(s) = c.sessions.get(&id) else {
            return Err(to_login());
        };
        let (tokens, hash) = (c.tokens.clone(), s.who.sha256.clone());
        let listed = tokio::task::spawn_blocking(move || tokens.find_hash(&hash))
            .await
            .map_err(|e| Failure::internal(e).into_response())?
            .map_err(|e| Failure::internal(e).into_response())?;
        if listed.is_none() {
            tracing::info!(token = %s.who.name, "console session ended: token revoked");
            c.sessions.remove(&id);
            return Err(to_login());
        }
        Ok(LoggedIn(s))
    }
}

impl Console {
    /// The console of `controller`, authenticating with `tokens`.
    pub fn new(controller: Arc<Controller>, tokens: TokenStore) -> Self {
        Console {
            controller,
            tokens,
            sessions: Arc::default(),
        }
    }

    /// The `/console` routes.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/console",
                get(|| async { Redirect::to("/console/devices") }),
            )
            .route("/console/login", get(login_form).post(login))
            .route("/console/logout", post(logout))
            .route("/console/devices", get(devices))
            .route("/console/devices/{dev}", get(device))
            .route("/console/devices/{dev}/logs", get(logs))
            .route("/console/devices/{dev}/config", post(set_config))
            .route("/console/static/console.js", get(js))
            .route("/console/static/console.css", get(css))
            .layer(axum::extract::DefaultBodyLimit::max(
                2 * crate::document::MAX_DOCUMENT_BYTES,
            ))
            .with_state(self)
    }
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn login_form() -> Html<String> {
    Html(pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(c): State<Console>, Form(form): Form<LoginForm>) -> Response {
    match c.tokens.identify(form.token.trim().to_owned()).await {
        Ok(Some(who)) => {
            tracing::info!(token = %who.name, read_only = who.read_only, "console login");
            let id = c
                .sessions
                .create(who, &c.controller.stats.console_sessions_evicted);
            (
                [(header::SET_COOKIE, session::set_cookie(&id))],
                Redirect::to("/console/devices"),
            )
                .into_response()
        }
        Ok(None) => {
            crate::limits::Stats::bump(&c.controller.stats.admin_auth_refused);
            tracing::info!("console login refused: unknown or revoked token");
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some(
                    "That token is not valid (unknown or revoked).",
                ))),
            )
                .into_response()
        }
        Err(f) => f.into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(c): State<Console>,
    LoggedIn(s): LoggedIn,
    headers: axum::http::HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::csrf_ok(&s, &form.csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    if let Some(id) = session::cookie(&headers) {
        c.sessions.remove(&id);
    }
    (
        [(header::SET_COOKIE, session::clear_cookie())],
        Redirect::to("/console/login"),
    )
        .into_response()
}

async fn devices(State(c): State<Console>, LoggedIn(s): LoggedIn) -> Response {
    match crate::admin::server::list(State(c.controller.clone())).await {
        Ok(Json(list)) => Html(pages::devices(&s, &list)).into_response(),
        Err(f) => pages::failure(&s, f),
    }
}

async fn device(
    State(c): State<Console>,
    LoggedIn(s): LoggedIn,
    UrlPath(dev): UrlPath<String>,
) -> Response {
    pages::device(&c.controller, &s, &dev, None).await
}

async fn logs(
    State(c): State<Console>,
    LoggedIn(_): LoggedIn,
    UrlPath(dev): UrlPath<String>,
    Query(mut q): Query<LogsQuery>,
) -> Response {
    q.wait = q.wait.map(|w| w.min(FOLLOW_WAIT));
    crate::admin::server::logs(State(c.controller.clone()), UrlPath(dev), Query(q))
        .await
        .into_response()
}

/// Reads the upload form: the CSRF field and the file's text.
async fn read_upload(mut form: Multipart) -> Result<(String, String), String> {
    let (mut csrf, mut text) = (String::new(), None);
    while let Some(field) = form.next_field().await.map_err(|e| e.body_text())? {
        match field.name() {
            Some("csrf") => csrf = field.text().await.map_err(|e| e.body_text())?,
            Some("file") => {
                let bytes = field.bytes().await.map_err(|e| e.body_text())?;
                let t = String::from_utf8(bytes.to_vec())
                    .map_err(|_| "the config file is not UTF-8 text".to_owned())?;
                text = Some(t);
            }
            _ => {}
        }
    }
    Ok((csrf, text.ok_or("no config file was uploaded")?))
}

async fn set_config(
    State(c): State<Console>,
    LoggedIn(s): LoggedIn,
    UrlPath(dev): UrlPath<String>,
    form: Multipart,
) -> Response {
    let (csrf, text) = match read_upload(form).await {
        Ok(x) => x,
        Err(e) => {
            let f = Failure::bad_request(e);
            return pages::device(&c.controller, &s, &dev, Some(Err(f))).await;
        }
    };
    if !session::csrf_ok(&s, &csrf) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    if s.who.read_only {
        let f = Failure::forbidden(format!(
            "token {} is read-only: it cannot set configs",
            s.who.name
        ));
        return pages::device(&c.controller, &s, &dev, Some(Err(f))).await;
    }
    let result = c.controller.set_config(&dev, text).await;
    if let Ok(set) = &result {
        tracing::info!(token = %s.who.name, device = %set.name, generation = set.generation,
            "config set from the console");
    }
    pages::device(&c.controller, &s, &dev, Some(result)).await
}
