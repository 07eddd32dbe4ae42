//! The daemon: binds its two sockets, then serves them on a tokio runtime
//! until told to stop.

mod daemonize;
mod query_side;
mod reader;
mod snapshot;
mod sockets;
mod state;
mod stream;
mod write_side;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::error::{Error, Result};
use state::Shared;
use write_side::WriteSide;

pub(crate) use daemonize::daemonize;

/// A memlogd whose sockets are bound (or inherited) but not yet served.
///
/// Binding is synchronous and separate from serving so that the binary can
/// bind, then daemonize, then start its runtime (as linuxkit's `-daemonize`).
#[derive(Debug)]
pub struct Server {
    cfg: Config,
    log_sock: OwnedFd,
    query_sock: OwnedFd,
    cleanup: Vec<PathBuf>,
    stop: Arc<watch::Sender<bool>>,
}

/// Stops a running [`Server`] (its `run` returns, its tasks end, its fds close).
#[derive(Debug, Clone)]
pub struct ShutdownHandle(Arc<watch::Sender<bool>>);

impl ShutdownHandle {
    /// Asks the server to stop; idempotent.
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

impl Server {
    /// Validates `cfg` and binds the write-side and query sockets (or takes
    /// over the fds given as `fd_log`/`fd_query`). A stale socket file left by
    /// a dead memlogd is replaced; a live one is an error.
    pub fn bind(cfg: Config) -> Result<Server> {
        cfg.validate()?;
        let bound = sockets::bind(&cfg)?;
        Ok(Server {
            cfg,
            log_sock: bound.log,
            query_sock: bound.query,
            cleanup: bound.cleanup,
            stop: Arc::new(watch::channel(false).0),
        })
    }

    /// A handle that makes [`Server::run`] return.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.stop.clone())
    }

    /// The configuration the server was bound with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Serves both sockets until the shutdown handle fires, then removes the
    /// socket files it created. Must be called inside a tokio runtime.
    pub async fn run(self) -> Result<()> {
        let Server {
            cfg,
            log_sock,
            query_sock,
            cleanup,
            stop,
        } = self;
        let io = |context: &str| {
            let context = context.to_string();
            move |source| Error::Io { context, source }
        };
        stream::set_nonblocking(&log_sock).map_err(io("setting the log socket non-blocking"))?;
        let log_fd = crate::fdpass::watch(log_sock).map_err(io("watching the log socket"))?;
        let listener = UnixListener::from(query_sock);
        listener
            .set_nonblocking(true)
            .map_err(io("setting the query socket non-blocking"))?;
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(io("watching the query socket"))?;

        let shared = Shared::new(cfg, stop.clone());
        // In the ring before any client is served: a follower that connects
        // at once must not get it as a new line.
        shared.log(format!("memlogd started (pid {})", std::process::id()));
        let write_side = Arc::new(WriteSide::new(log_fd, shared.clone()));
        shared.spawn(write_side.clone().run());
        shared.spawn(query_side::accept_loop(
            listener,
            shared.clone(),
            write_side,
        ));

        let mut stopped = stop.subscribe();
        let _ = stopped.wait_for(|s| *s).await;
        for path in cleanup {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Runs until `until` completes.
    pub async fn run_until(self, until: impl Future<Output = ()>) -> Result<()> {
        let handle = self.shutdown_handle();
        let serve = self.run();
        tokio::pin!(serve);
        tokio::select! {
            r = &mut serve => return r,
            _ = until => handle.shutdown(),
        }
        serve.await
    }
}

/// Binds and serves `config` until SIGTERM or SIGINT (the daemon's main).
pub async fn run(config: Config) -> Result<()> {
    Server::bind(config)?.run_until_signal().await
}

impl Server {
    /// Serves until SIGTERM or SIGINT.
    pub async fn run_until_signal(self) -> Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let io = |source| Error::Io {
            context: "installing signal handlers".into(),
            source,
        };
        let mut term = signal(SignalKind::terminate()).map_err(io)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io)?;
        self.run_until(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await
    }
}
