//! One TLS connection: the handshake (bounded by the header timeout),
//! the client certificate's fingerprint, then HTTP/1.1 with hyper
//! (`header_read_timeout` = what is left of the same 10 s; hyper applies it
//! to every request head, so an idle keep-alive connection is closed after
//! about that long too).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::peer::Peer;
use crate::limits::Stats;
use crate::pki::sha256_hex;
use crate::state::Controller;

/// How long open connections get to finish when the server stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Everything a connection task needs.
#[derive(Clone)]
pub(crate) struct ConnContext {
    pub controller: Arc<Controller>,
    pub acceptor: TlsAcceptor,
    pub router: Router,
    pub shutdown: watch::Receiver<bool>,
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn serve_connection(
    cx: ConnContext,
    tcp: TcpStream,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
) {
    let stats = &cx.controller.stats;
    stats.connections_open.fetch_add(1, Ordering::Relaxed);
    serve_inner(&cx, tcp, addr).await;
    stats.connections_open.fetch_sub(1, Ordering::Relaxed);
    // the controller goes before the permit: when `run` holds every permit,
    // no connection holds the database any more
    drop(cx);
    drop(permit);
}

async fn serve_inner(cx: &ConnContext, tcp: TcpStream, addr: SocketAddr) {
    let stats = &cx.controller.stats;
    let limits = &cx.controller.limits;
    let started = Instant::now();
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(limits.header_timeout, cx.acceptor.accept(tcp)).await {
        Err(_) => {
            Stats::bump(&stats.handshake_timeouts);
            tracing::debug!(peer = %addr, "TLS handshake timed out");
            return;
        }
        Ok(Err(e)) => {
            Stats::bump(&stats.handshake_failures);
            tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    Stats::bump(&stats.connections_accepted);
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first());
    let fingerprint = leaf.map(|cert| Arc::<str>::from(sha256_hex(cert)));
    // checked on every request: a resumed TLS session or a long-lived
    // connection must not outlive the certificate
    let expiry = leaf.and_then(|cert| crate::certs::verifier::not_after(cert));
    let clock = cx.controller.certs.clock.clone();
    let peer = Peer { fingerprint, addr };
    let router = cx.router.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        let router = router.clone();
        let expired = crate::certs::verifier::expired_failure(expiry, &clock);
        async move {
            match expired {
                Some(f) => Ok(f.into_response()),
                None => router.oneshot(req.map(Body::new)).await,
            }
        }
    });
    let first_headers = limits
        .header_timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(100));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(first_headers)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = crate::limits::stopped(cx.shutdown.clone()) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(DRAIN, conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        Stats::bump(&stats.connection_errors);
        tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
    }
}
