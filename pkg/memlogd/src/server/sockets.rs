//! Binding (or inheriting) the two sockets.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt, SockType};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fdpass::inherit_socket;

/// The bound sockets and the files to remove on shutdown.
#[derive(Debug)]
pub(super) struct Bound {
    pub log: OwnedFd,
    pub query: OwnedFd,
    pub cleanup: Vec<PathBuf>,
}

pub(super) fn bind(cfg: &Config) -> Result<Bound> {
    if cfg.fd_log.is_some() && cfg.fd_log == cfg.fd_query {
        return Err(Error::Config("-fd-log and -fd-query must differ".into()));
    }
    let mut cleanup = Vec::new();
    let log = match cfg.fd_log {
        Some(fd) => inherit_socket(fd, "fd-log", SockType::Datagram)?,
        None => {
            prepare_path(&cfg.socket_log, SockType::Datagram)?;
            let sock = UnixDatagram::bind(&cfg.socket_log).map_err(|source| Error::Bind {
                path: cfg.socket_log.clone(),
                source,
            })?;
            cleanup.push(cfg.socket_log.clone());
            sock.into()
        }
    };
    let query = match cfg.fd_query {
        Some(fd) => {
            let sock = inherit_socket(fd, "fd-query", SockType::Stream)?;
            if !getsockopt(&sock, sockopt::AcceptConn).unwrap_or(false) {
                return Err(Error::InheritFd {
                    flag: "fd-query",
                    fd,
                    reason: "socket is not listening".into(),
                });
            }
            sock
        }
        None => {
            prepare_path(&cfg.socket_query, SockType::Stream)?;
            let sock = UnixListener::bind(&cfg.socket_query).map_err(|source| Error::Bind {
                path: cfg.socket_query.clone(),
                source,
            })?;
            cleanup.push(cfg.socket_query.clone());
            sock.into()
        }
    };
    Ok(Bound {
        log,
        query,
        cleanup,
    })
}

/// Removes a stale socket file at `path` (nobody answers on it); refuses to
/// touch a live socket or anything that is not a socket.
fn prepare_path(path: &Path, kind: SockType) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::Bind {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "path exists and is not a socket; remove it",
            ),
        });
    }
    let probe = match kind {
        SockType::Datagram => UnixDatagram::unbound().and_then(|s| s.connect(path)),
        _ => UnixStream::connect(path).map(drop),
    };
    match probe {
        Ok(()) => Err(Error::AlreadyRunning {
            path: path.to_path_buf(),
        }),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => std::fs::remove_file(path)
            .map_err(|source| Error::Bind {
                path: path.to_path_buf(),
                source,
            }),
        Err(source) => Err(Error::Bind {
            path: path.to_path_buf(),
            source,
        }),
    }
}
