//! `outpost-controller serve`: the device API over HTTPS and the admin API
//! on the root-only unix socket, until shutdown.

mod api;
pub(crate) mod baseos;
mod body;
mod config_poll;
mod connection;
mod peer;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

pub use api::router;
pub use body::read_json_body;
pub use peer::Peer;
pub use tls::{server_config, server_config_with};

use crate::error::{ControllerError, Result};
use crate::layout::StateDir;
use crate::limits::{Limits, Stats};
use crate::state::Controller;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The state directory.
    pub state: StateDir,
    /// Address to listen on (`None`: the one `init` stored).
    pub listen: Option<String>,
    /// Accept unknown serials for this run, whatever `init` stored.
    pub open_onboarding: bool,
    /// Bounds.
    pub limits: Limits,
    /// HTTPS admin API + web console address (`None`: off).
    pub admin_listen: Option<String>,
    /// PostgreSQL URL or connection string (`None`: the state dir's redb
    /// file). Any number of servers may share one database.
    pub database: Option<String>,
    /// CA(s) the database server's certificate must chain to; TLS to it
    /// is required then (`--database-ca`).
    pub database_ca: Option<std::path::PathBuf>,
    /// Device certificate lifetime and the clock of validity checks.
    pub certs: crate::certs::CertPolicy,
}

impl ServeOptions {
    /// Defaults for `state`.
    pub fn new(state: StateDir) -> Self {
        ServeOptions {
            state,
            listen: None,
            open_onboarding: false,
            limits: Limits::default(),
            admin_listen: None,
            database: None,
            database_ca: None,
            certs: crate::certs::CertPolicy::default(),
        }
    }
}

/// A bound server, not yet serving.
pub struct Server {
    controller: Arc<Controller>,
    listener: TcpListener,
    admin: tokio::net::UnixListener,
    acceptor: TlsAcceptor,
    addr: SocketAddr,
    admin_https: Option<crate::admin::https::AdminListener>,
}

/// Raises the soft open-file limit to the hard one (each connection is a
/// descriptor; the default 1024 is below `max_connections`).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

impl Server {
    /// Opens the state, binds the listener and the admin socket.
    pub async fn bind(opts: ServeOptions) -> Result<Server> {
        raise_fd_limit();
        let controller = {
            let opts = opts.clone();
            tokio::task::spawn_blocking(move || {
                Controller::open_with(
                    opts.state,
                    opts.open_onboarding,
                    opts.limits,
                    opts.database.as_deref(),
                    opts.database_ca.as_deref(),
                )
                .map(|c| c.with_cert_policy(opts.certs))
            })
            .await
            .map_err(|e| ControllerError::Invalid(format!("opening the state: {e}")))??
        };
        let listen = match opts.listen {
            Some(l) => l,
            None => controller.db().settings()?.listen,
        };
        let acceptor = TlsAcceptor::from(server_config_with(&opts.state, &opts.certs.clock)?);
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(ControllerError::io("listening on", &listen))?;
        let addr = listener
            .local_addr()
            .map_err(ControllerError::io("reading the address of", &listen))?;
        let admin = crate::admin::server::bind(&opts.state.admin_socket())?;
        let admin_https = match &opts.admin_listen {
            Some(l) => Some(crate::admin::https::AdminListener::bind(&opts.state, l).await?),
            None => None,
        };
        Ok(Server {
            admin_https,
            controller: Arc::new(controller),
            listener,
            admin,
            acceptor,
            addr,
        })
    }

    /// The address the device API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the HTTPS admin API and console, when enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_https.as_ref().map(|a| a.local_addr())
    }

    /// The controller (for in-process tests).
    pub fn controller(&self) -> Arc<Controller> {
        self.controller.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, answers
    /// waiting long-polls, gives open connections a few seconds, and
    /// removes the admin socket.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let Server {
            controller,
            listener,
            admin,
            acceptor,
            addr,
            admin_https,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let admin_task = tokio::spawn(crate::admin::server::serve(
            controller.clone(),
            admin,
            stop_rx.clone(),
        ));
        let https_task =
            admin_https.map(|l| tokio::spawn(l.serve(controller.clone(), stop_rx.clone())));
        let follower = tokio::spawn(controller.clone().follow());
        let presence = tokio::spawn(controller.clone().keep_presence());
        let signing = tokio::spawn(controller.clone().keep_signing_fresh());
        let max = controller.limits.max_connections;
        let slots = Arc::new(Semaphore::new(max));
        let cx = connection::ConnContext {
            controller: controller.clone(),
            acceptor,
            router: api::router(controller.clone()),
            shutdown: stop_rx,
        };
        tracing::info!(%addr, open_onboarding = controller.open_onboarding(), "serving");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            Stats::bump(&controller.stats.connections_refused);
                            tracing::warn!(%peer, max, "connection refused: too many open connections");
                            drop(tcp);
                            continue;
                        };
                        tokio::spawn(connection::serve_connection(cx.clone(), tcp, peer, permit));
                    }
                    Err(e) => {
                        // out of descriptors, most likely: let connections close
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::info!("shutting down");
        drop(listener);
        controller.begin_shutdown();
        let _ = stop_tx.send(true);
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
        let _ = admin_task.await;
        if let Some(t) = https_task {
            let _ = t.await;
        }
        let _ = follower.await;
        let _ = presence.await;
        let _ = signing.await;
        // the long-polls have ended: their devices' last request is now
        if let Err(e) = controller.flush_presence().await {
            tracing::warn!(error = %e.message, "could not write device presence at shutdown");
        }
        let _ = std::fs::remove_file(controller.state_dir().admin_socket());
        Ok(())
    }
}
