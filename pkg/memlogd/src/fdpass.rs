//! The only module with `unsafe`: receiving fds over `SCM_RIGHTS` (nix's
//! `recvmsg` refuses to parse a truncated control buffer, which would leak the
//! fds the kernel did install) and taking ownership of inherited fd numbers.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::socket::{getsockopt, sockopt, SockType};

use crate::error::{Error, Result};

/// Most fds the kernel passes in one message (`SCM_MAX_FD`).
pub(crate) const SCM_MAX_FD: usize = 253;

/// One datagram read from the write-side socket.
#[derive(Debug)]
pub(crate) struct Received {
    /// The payload (the stream name), at most the buffer size given.
    pub name: Vec<u8>,
    /// The datagram was longer than the buffer (`MSG_TRUNC`).
    pub name_truncated: bool,
    /// Fds received, already `CLOEXEC` and owned: dropping closes them.
    pub fds: Vec<OwnedFd>,
    /// Some fds could not be delivered (`MSG_CTRUNC`, e.g. fd table full).
    pub fds_truncated: bool,
}

/// Receives one datagram without blocking (`EAGAIN` when none is queued),
/// with fds marked close-on-exec by the kernel (`MSG_CMSG_CLOEXEC`).
pub(crate) fn recv_fds(sock: BorrowedFd<'_>, max_name: usize) -> io::Result<Received> {
    let mut name = vec![0u8; max_name];
    // u64 elements keep the control buffer aligned for cmsghdr.
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    let cmsg_bytes = unsafe { libc::CMSG_SPACE((SCM_MAX_FD * size_of::<libc::c_int>()) as u32) };
    let mut cmsg = vec![0u64; (cmsg_bytes as usize).div_ceil(size_of::<u64>())];

    let mut iov = libc::iovec {
        iov_base: name.as_mut_ptr().cast(),
        iov_len: name.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid value
    // (null pointers, zero lengths); the fields we need are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len() * size_of::<u64>();

    // SAFETY: msg points at `iov` and `cmsg`, both live and sized as declared
    // for the duration of the call.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }

    // Take ownership of every installed fd before looking at anything else,
    // so that every early return below closes them.
    let mut fds = Vec::new();
    // SAFETY: msg was filled by a successful recvmsg; msg_controllen was
    // updated by the kernel to the bytes actually written.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !c.is_null() {
        // SAFETY: c is non-null and within the control buffer (CMSG_FIRSTHDR
        // and CMSG_NXTHDR check the bounds).
        let hdr = unsafe { &*c };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: as above; CMSG_LEN(0) is the header size.
            let (data, header) = unsafe { (libc::CMSG_DATA(c), libc::CMSG_LEN(0) as usize) };
            let count = (hdr.cmsg_len as usize).saturating_sub(header) / size_of::<libc::c_int>();
            for i in 0..count {
                // SAFETY: the kernel wrote `count` ints after the header; the
                // data may be unaligned, hence read_unaligned.
                let raw: RawFd = unsafe { data.cast::<libc::c_int>().add(i).read_unaligned() };
                if raw >= 0 {
                    // SAFETY: the kernel just installed this fd for us; nothing
                    // else in the process knows its number.
                    fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        // SAFETY: msg and c are valid as above.
        c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
    }

    name.truncate((n as usize).min(max_name));
    Ok(Received {
        name,
        name_truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        fds,
        fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// Takes ownership of an inherited socket fd (`-fd-log`, `-fd-query`) after
/// checking it is open and of the `expected` type, and marks it `CLOEXEC`.
pub(crate) fn inherit_socket(fd: RawFd, flag: &'static str, expected: SockType) -> Result<OwnedFd> {
    let bad = |reason: String| Error::InheritFd { flag, fd, reason };
    if fd <= 2 {
        return Err(bad("fds 0-2 are stdio, refusing to take them over".into()));
    }
    // SAFETY: F_GETFD only queries the descriptor table; an invalid fd yields EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(bad(format!("{}", io::Error::last_os_error())));
    }
    // SAFETY: the fd is open (checked above) and was handed to this process
    // on the command line for memlogd's exclusive use; nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match getsockopt(&owned, sockopt::SockType) {
        Ok(t) if t == expected => {}
        Ok(t) => {
            // Not ours to close after all: hand the number back untouched.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(owned);
            return Err(bad(format!("socket type is {t:?}, want {expected:?}")));
        }
        Err(e) => {
            let _ = std::os::fd::IntoRawFd::into_raw_fd(owned);
            return Err(bad(format!("not a socket: {e}")));
        }
    }
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| bad(format!("setting CLOEXEC: {e}")))?;
    Ok(owned)
}

/// Registers an owned fd with the tokio reactor (must run inside a runtime).
/// `File` owns its fd, always reports the same number and closes it only on
/// drop, which is what `AsyncFd::register` requires.
pub(crate) fn watch(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    let file = std::fs::File::from(fd);
    // SAFETY: `file` owns a valid open fd; the AsyncFd takes ownership of the
    // File, so the fd stays open and unchanged until the AsyncFd is dropped.
    unsafe { tokio::io::unix::AsyncFd::register(file) }.map_err(io::Error::from)
}
