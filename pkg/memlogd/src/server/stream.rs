//! Reading one registered fd: lines in, ring entries out.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::{fstat, SFlag};
use tokio::io::unix::AsyncFd;

use super::state::{EncodedLine, Shared};
use crate::encode::{encode_with_prefix, entry_prefix};
use crate::linesplit::{to_msg, LineSplitter};

/// Bytes read per `read(2)`.
const CHUNK: usize = 64 * 1024;
/// Reads allowed when draining a released FIFO (bounds a writer that never stops).
const DRAIN_READS: usize = 16;

thread_local! {
    /// Read buffer shared by all streams served by this thread: it is only
    /// used between two awaits, so idle streams hold no buffer at all.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fifo,
    Pollable,
    Regular,
}

/// Releases the stream's slot in the counters however the task ends.
struct Registration {
    shared: Arc<Shared>,
    name: Arc<str>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.close_stream(&self.name);
    }
}

/// Starts reading `fd` as stream `name`, or closes it (counted) if it is of a
/// kind memlogd cannot read or `max_streams` are already open.
pub(super) fn start(shared: &Arc<Shared>, name: &str, fd: OwnedFd) {
    let reject = |why: String| {
        shared.counters.streams_rejected.fetch_add(1, Relaxed);
        shared.log(format!("not reading stream {name:?}: {why}"));
    };
    let kind = match fstat(&fd) {
        Err(e) => return reject(format!("fstat: {e}")),
        Ok(st) => match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFIFO => Kind::Fifo,
            SFlag::S_IFSOCK | SFlag::S_IFCHR => Kind::Pollable,
            SFlag::S_IFREG => Kind::Regular,
            _ => return reject("not a pipe, FIFO, socket, character device or file".into()),
        },
    };
    let Some(name) = shared.open_stream(name) else {
        return reject(format!("{} streams already open", shared.cfg.max_streams));
    };
    let reg = Registration {
        shared: shared.clone(),
        name,
    };
    if kind == Kind::Regular {
        tokio::task::spawn_blocking(move || read_file(reg, File::from(fd)));
        return;
    }
    let afd = match set_nonblocking(&fd).and_then(|()| crate::fdpass::watch(fd)) {
        Ok(afd) => afd,
        Err(e) => {
            let name = reg.name.clone();
            drop(reg);
            shared.counters.streams_rejected.fetch_add(1, Relaxed);
            shared.log(format!("not reading stream {name:?}: cannot poll it: {e}"));
            return;
        }
    };
    shared.spawn(read_pollable(reg, afd, kind == Kind::Fifo));
}

/// Sets `O_NONBLOCK`, keeping the other status flags.
pub(super) fn set_nonblocking(fd: &impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[derive(Debug)]
enum End {
    Eof,
    Unlinked,
    Failed(io::Error),
}

async fn read_pollable(reg: Registration, afd: AsyncFd<File>, fifo: bool) {
    let shared = reg.shared.clone();
    let interval = shared.cfg.fifo_check_interval;
    let mut splitter = LineSplitter::new(shared.cfg.max_line_len);
    let mut last_check = Instant::now();
    let end = loop {
        let ready = if fifo {
            match tokio::time::timeout(interval, afd.readable()).await {
                Ok(r) => r,
                Err(_idle) => {
                    last_check = Instant::now();
                    if unlinked(&afd) {
                        break End::Unlinked;
                    }
                    continue;
                }
            }
        } else {
            afd.readable().await
        };
        let mut guard = match ready {
            Ok(g) => g,
            Err(e) => break End::Failed(e),
        };
        match guard.try_io(|f| read_chunk(f.get_ref(), &shared, &reg.name, &mut splitter)) {
            Ok(Ok(0)) => break End::Eof,
            // Let readers and other streams run between two chunks: a
            // flooding stream must not monopolise a worker thread.
            Ok(Ok(_)) => tokio::task::yield_now().await,
            Ok(Err(e)) => break End::Failed(e),
            Err(_would_block) => {}
        }
        if fifo && last_check.elapsed() >= interval {
            last_check = Instant::now();
            if unlinked(&afd) {
                break End::Unlinked;
            }
        }
    };
    match end {
        End::Unlinked => {
            for _ in 0..DRAIN_READS {
                match read_chunk(afd.get_ref(), &shared, &reg.name, &mut splitter) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            shared.counters.fifos_released.fetch_add(1, Relaxed);
            shared.log(format!(
                "stream {:?}: FIFO was removed, closing it",
                reg.name
            ));
        }
        End::Failed(e) => shared.log(format!("stream {:?}: read failed: {e}", reg.name)),
        End::Eof => {}
    }
    flush_partial(&shared, &reg.name, &mut splitter);
}

/// A regular file: read to EOF on a blocking thread.
fn read_file(reg: Registration, file: File) {
    let shared = reg.shared.clone();
    let mut splitter = LineSplitter::new(shared.cfg.max_line_len);
    loop {
        if shared.stopping() {
            return;
        }
        match read_chunk(&file, &shared, &reg.name, &mut splitter) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                shared.log(format!("stream {:?}: read failed: {e}", reg.name));
                break;
            }
        }
    }
    flush_partial(&shared, &reg.name, &mut splitter);
}

/// One `read(2)`; complete lines go to the ring. Returns the bytes read.
fn read_chunk(
    mut file: &File,
    shared: &Shared,
    name: &Arc<str>,
    splitter: &mut LineSplitter,
) -> io::Result<usize> {
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        let n = file.read(&mut buf)?;
        if n > 0 {
            let prefix = entry_prefix(SystemTime::now(), name);
            let mut lines = Vec::new();
            let mut scratch = Vec::new();
            splitter.feed(&buf[..n], |line, truncated| {
                lines.push(encode(&mut scratch, &prefix, line, truncated));
            });
            shared.push_lines(name, lines);
        }
        Ok(n)
    })
}

fn flush_partial(shared: &Shared, name: &Arc<str>, splitter: &mut LineSplitter) {
    let prefix = entry_prefix(SystemTime::now(), name);
    let mut lines = Vec::new();
    let mut scratch = Vec::new();
    splitter.finish(|line, truncated| {
        lines.push(encode(&mut scratch, &prefix, line, truncated));
    });
    shared.push_lines(name, lines);
}

fn encode(scratch: &mut Vec<u8>, prefix: &[u8], line: &[u8], truncated: bool) -> EncodedLine {
    scratch.clear();
    encode_with_prefix(scratch, prefix, &to_msg(line, truncated));
    (Arc::from(&scratch[..]), truncated)
}

/// The FIFO behind `afd` has no name left (`st_nlink == 0`).
fn unlinked(afd: &AsyncFd<File>) -> bool {
    matches!(fstat(afd.get_ref()), Ok(st) if st.st_nlink == 0)
}
