//! The admin API over HTTPS (`serve --admin-listen HOST:PORT`, off by
//! default, never on the device port): the `/v1` routes of
//! [`super::server::router`] behind `Authorization: Bearer <token>`
//! ([`super::tokens`]), and the web console ([`crate::console`]) behind a
//! session cookie got by logging in with a token.
//!
//! TLS: `admin.cert.pem` / `admin.key.pem` in the state directory, issued by
//! the controller's CA the first time `serve --admin-listen` runs (SANs
//! `localhost`, `127.0.0.1`, `::1` and the listen host), so a client trusts
//! `ca.cert.pem`. No client certificate is asked for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::tokens::TokenStore;
use crate::error::{ControllerError, Result};
use crate::layout::StateDir;
use crate::pki::{self, Ca, Leaf, Validity};
use crate::reply::Failure;
use crate::state::Controller;

/// Certificate of the HTTPS admin listener.
pub const ADMIN_CERT: &str = "admin.cert.pem";
/// Its key.
pub const ADMIN_KEY: &str = "admin.key.pem";
/// Concurrent admin connections; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// TLS handshake and request-head timeout.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole request, body and answer (above the longest log wait, 60 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The admin HTTPS listener, bound, not yet serving.
pub struct AdminListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    addr: SocketAddr,
}

/// Issues `admin.cert.pem` from the CA unless it exists.
fn ensure_cert(state: &StateDir, listen: &str) -> Result<()> {
    if state.file(ADMIN_CERT).exists() && state.file(ADMIN_KEY).exists() {
        return Ok(());
    }
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if let Some((host, _)) = listen.rsplit_once(':') {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if !host.is_empty()
            && !["0.0.0.0", "::"].contains(&host)
            && !names.iter().any(|n| n == host)
        {
            names.push(host.to_owned());
        }
    }
    let ca = Ca::load(state)?;
    let issued = ca.issue(
        &Leaf::Server(names),
        Validity::days_from_now(pki::SERVICE_CERT_DAYS),
    )?;
    pki::write_file(&state.file(ADMIN_KEY), issued.key_pem.as_bytes(), 0o600)?;
    let chain = format!("{}{}", issued.cert_pem, ca.cert_pem());
    pki::write_file(&state.file(ADMIN_CERT), chain.as_bytes(), 0o644)
}

fn tls_config(state: &StateDir) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = pki::read_certs(&state.file(ADMIN_CERT))?;
    let key_path = state.file(ADMIN_KEY);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(ControllerError::pki(key_path.display().to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ControllerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ControllerError::Tls(format!("admin certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl AdminListener {
    /// Issues the certificate if needed and binds `listen`.
    pub async fn bind(state: &StateDir, listen: &str) -> Result<AdminListener> {
        ensure_cert(state, listen)?;
        let acceptor = TlsAcceptor::from(tls_config(state)?);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(ControllerError::io("listening on", listen))?;
        let addr = listener
            .local_addr()
            .map_err(ControllerError::io("reading the address of", listen))?;
        Ok(AdminListener {
            listener,
            acceptor,
            addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` turns true.
    pub async fn serve(self, controller: Arc<Controller>, stop: watch::Receiver<bool>) {
        let tokens = TokenStore::new(controller.state_dir());
        let console = crate::console::Console::new(controller.clone(), tokens.clone());
        let app = super::server::router(controller.clone())
            .route_layer(axum::middleware::from_fn_with_state(
                (tokens, controller.clone()),
                bearer_auth,
            ))
            .merge(console.router())
            .layer(axum::middleware::from_fn(security_headers));
        tracing::info!(addr = %self.addr, "admin API and console on HTTPS");
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let stopped = crate::limits::stopped(stop.clone());
        tokio::pin!(stopped);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut stopped => break,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "admin connection refused: too many open");
                continue;
            };
            let (acceptor, app, stop) = (self.acceptor.clone(), app.clone(), stop.clone());
            tokio::spawn(async move {
                serve_connection(acceptor, app, tcp, peer, stop).await;
                drop(permit);
            });
        }
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "admin TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let answer = app.clone().oneshot(req.map(Body::new));
        async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, answer).await {
                Ok(r) => r,
                Err(_) => Ok(Failure::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request took longer than {} s",
                        REQUEST_TIMEOUT.as_secs()
                    ),
                )
                .into_response()),
            }
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = crate::limits::stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
        }
    }
}

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether a request only reads.
pub fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// `/v1`: a listed token, and a read-only one only for GET/HEAD.
async fn bearer_auth(
    State((tokens, c)): State<(TokenStore, Arc<Controller>)>,
    req: Request,
    next: Next,
) -> Response {
    let refused = || crate::limits::Stats::bump(&c.stats.admin_auth_refused);
    let Some(token) = bearer(&req).map(str::to_owned) else {
        refused();
        return unauthorized("an Authorization: Bearer <token> header is required");
    };
    let who = match tokens.identify(token).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            refused();
            return unauthorized("the token is not valid (unknown or revoked)");
        }
        Err(f) => return f.into_response(),
    };
    if who.read_only && !is_read(req.method()) {
        refused();
        tracing::info!(token = %who.name, method = %req.method(), path = %req.uri().path(),
            "refused: read-only token");
        return Failure::forbidden(format!(
            "token {} is read-only: {} {} is refused",
            who.name,
            req.method(),
            req.uri().path()
        ))
        .into_response();
    }
    tracing::debug!(token = %who.name, method = %req.method(), path = %req.uri().path(), "admin request");
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut r = Failure::unauthorized(message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"outpost-controller\""),
    );
    r
}

/// Headers on every HTTPS answer: no caching, no framing, scripts and
/// styles only from the console itself.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    r
}
