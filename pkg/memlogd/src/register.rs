//! Registering streams with memlogd: one datagram, name as payload, fds in
//! `SCM_RIGHTS`.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{
    sendmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessage, MsgFlags, SockFlag,
    SockType, UnixAddr,
};
use nix::sys::time::TimeVal;

use crate::error::{Error, Result};

/// Longest stream name memlogd accepts, in bytes; longer names are refused.
pub const MAX_NAME_LEN: usize = 256;

/// Most fds one registration may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS_PER_DATAGRAM: usize = crate::fdpass::SCM_MAX_FD;

/// How long a registration may wait for room in memlogd's socket queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Hands `fds` to the memlogd listening on `log_socket`, to be read as stream
/// `name` (every fd under the same name). memlogd keeps its own copies: the
/// caller may (and normally should) close its fds afterwards.
///
/// Fails if the name is empty or longer than [`MAX_NAME_LEN`], if no or too
/// many fds are given, or if the datagram cannot be sent within 5 s.
pub fn register_fds(log_socket: &Path, name: &str, fds: &[BorrowedFd<'_>]) -> Result<()> {
    check_name(name)?;
    if fds.is_empty() || fds.len() > MAX_FDS_PER_DATAGRAM {
        return Err(Error::FdCount {
            stream: name.to_string(),
            count: fds.len(),
            max: MAX_FDS_PER_DATAGRAM,
        });
    }
    let fail = |source: std::io::Error| Error::Register {
        path: log_socket.to_path_buf(),
        stream: name.to_string(),
        source,
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail(e.into()))?;
    let timeout = TimeVal::new(SEND_TIMEOUT.as_secs() as _, 0);
    setsockopt(&sock, sockopt::SendTimeout, &timeout).map_err(|e| fail(e.into()))?;
    let addr = UnixAddr::new(log_socket).map_err(|e| fail(e.into()))?;
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let iov = [IoSlice::new(name.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        Some(&addr),
    )
    .map_err(|e| fail(e.into()))?;
    Ok(())
}

/// The rule memlogd applies to stream names.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 256 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.chars().take(64).collect(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_sending() {
        let nowhere = Path::new("/nonexistent/memlogd.sock");
        let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        use std::os::fd::AsFd;
        assert!(matches!(
            register_fds(nowhere, "", &[r.as_fd()]),
            Err(Error::InvalidName { .. })
        ));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            register_fds(nowhere, &long, &[r.as_fd()]),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            register_fds(nowhere, "ok", &[]),
            Err(Error::FdCount { .. })
        ));
        let err = register_fds(nowhere, "ok", &[r.as_fd()]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/memlogd.sock"),
            "{err}"
        );
    }
}
