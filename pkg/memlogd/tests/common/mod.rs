//! Test harness: runs the real `memlogd` binary on sockets in a temp dir.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memlogd::{LogEntry, Stats};
use nix::sys::socket::{
    sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

pub const MEMLOGD: &str = env!("CARGO_BIN_EXE_memlogd");
pub const LOGREAD: &str = env!("CARGO_BIN_EXE_logread");
pub const LOGWRITE: &str = env!("CARGO_BIN_EXE_logwrite");

/// Generous: the deadline only matters when something is broken.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `f` every few ms until it returns `Some`, failing after `DEADLINE`.
pub fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A memlogd process, killed on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub query: PathBuf,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    /// Starts memlogd with its sockets in `dir` (reused across restarts).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Daemon {
        let log = dir.path().join("log.sock");
        let query = dir.path().join("query.sock");
        let child = Command::new(MEMLOGD)
            .arg("-socket-log")
            .arg(&log)
            .arg(format!("-socket-query={}", query.display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child,
            dir,
            log,
            query,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let query = self.query.clone();
        let child = &mut self.child;
        wait_until("memlogd to answer", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("memlogd exited early: {status}");
            }
            memlogd::stats(&query).ok()
        });
    }

    /// SIGKILLs memlogd (leaving its socket files behind) and hands back its dir.
    pub fn kill_keep_dir(mut self) -> tempfile::TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Number of open fds of the memlogd process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Waits until the fd count is back to `baseline`.
    pub fn wait_fds(&self, baseline: usize) {
        wait_until(&format!("memlogd fd count back to {baseline}"), || {
            (self.fd_count() == baseline).then_some(())
        });
    }

    /// fd count once it has been stable (no stats connection in flight).
    pub fn settled_fd_count(&self) -> usize {
        let mut last = self.fd_count();
        wait_until("a stable fd count", || {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.fd_count();
            let stable = now == last;
            last = now;
            stable.then_some(now)
        })
    }

    pub fn stats(&self) -> Stats {
        memlogd::stats(&self.query).unwrap()
    }

    pub fn dump(&self) -> Vec<LogEntry> {
        memlogd::dump(&self.query, None).unwrap()
    }

    pub fn dump_source(&self, source: &str) -> Vec<String> {
        memlogd::dump(&self.query, Some(source))
            .unwrap()
            .into_iter()
            .map(|e| e.msg)
            .collect()
    }

    /// Waits until `source` has exactly `want` lines in a dump and returns them.
    pub fn wait_lines(&self, source: &str, want: usize) -> Vec<String> {
        wait_until(&format!("{want} lines from {source}"), || {
            let got = self.dump_source(source);
            assert!(got.len() <= want, "too many lines from {source}: {got:?}");
            (got.len() == want).then_some(got)
        })
    }

    /// Peak resident set size of memlogd in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Raw query connection that has sent `mode`.
    pub fn raw_query(&self, mode: u8) -> UnixStream {
        let mut s = UnixStream::connect(&self.query).unwrap();
        s.write_all(&[mode]).unwrap();
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe whose read end is registered as `name`; returns the write end.
pub fn register_pipe(log: &Path, name: &str) -> File {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    memlogd::register_fds(log, name, &[r.as_fd()]).unwrap();
    File::from(w)
}

/// Sends a datagram with arbitrary payload and fds (no client-side checks).
pub fn send_raw(log: &Path, payload: &[u8], fds: &[RawFd]) -> nix::Result<usize> {
    let sock: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(log)?;
    let iov = [std::io::IoSlice::new(payload)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg(
        sock.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::empty(),
        Some(&addr),
    )
}

/// Reads everything until EOF.
pub fn read_all(mut s: impl Read) -> String {
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
