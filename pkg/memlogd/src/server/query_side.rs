//! The query side: one mode byte in, JSON lines out.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::reader::Reader;
use super::state::{Shared, Start};
use super::write_side::WriteSide;
use crate::client::QueryMode;
use crate::encode::encode_entry;

/// Bytes copied out of the ring per write to a reader.
const BATCH_BYTES: usize = 32 * 1024;
/// How the notice ending an incomplete dump starts (source `memlogd`).
pub(crate) const NOTICE_PREFIX: &str = "dump incomplete:";

/// Removes the reader from the counters however its task ends.
struct Registration {
    shared: Arc<Shared>,
    reader: Arc<Reader>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.remove_reader(&self.reader);
    }
}

/// Accepts query connections until the server stops.
pub(super) async fn accept_loop(
    listener: UnixListener,
    shared: Arc<Shared>,
    write_side: Arc<WriteSide>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                shared.log(format!("accepting a query connection: {e}"));
                // EMFILE and friends: give the process a moment to free fds.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(reader) = shared.add_reader() else {
            shared.counters.readers_rejected.fetch_add(1, Relaxed);
            shared.log(format!(
                "refused a query connection: {} already active",
                shared.cfg.max_readers
            ));
            continue; // dropping the stream closes it
        };
        let reg = Registration {
            shared: shared.clone(),
            reader,
        };
        shared.spawn(serve(reg, stream, write_side.clone()));
    }
}

async fn serve(reg: Registration, mut stream: UnixStream, write_side: Arc<WriteSide>) {
    let shared = &reg.shared;
    let mut byte = [0u8; 1];
    let mode = match tokio::time::timeout(shared.cfg.mode_timeout, stream.read(&mut byte)).await {
        Ok(Ok(1)) => QueryMode::from_byte(byte[0]),
        _ => None,
    };
    let Some(mode) = mode else {
        shared.counters.bad_modes.fetch_add(1, Relaxed);
        return;
    };
    let start = shared.begin(&reg.reader, mode);
    // Errors here are the reader hanging up: nothing to report.
    let _ = serve_mode(shared, &reg.reader, &mut stream, &write_side, mode, start).await;
}

async fn serve_mode(
    shared: &Shared,
    reader: &Reader,
    stream: &mut UnixStream,
    write_side: &WriteSide,
    mode: QueryMode,
    start: Start,
) -> io::Result<()> {
    let (end, missing) = match start {
        Start::Stats => {
            write_side.drain_all();
            return send_stats(shared, stream).await;
        }
        Start::Follow(from) => return follow(shared, reader, stream, from).await,
        Start::Snapshot { end } => (end, send_snapshot(shared, reader, stream).await?),
        Start::Range { first, end } => (end, send_range(shared, reader, stream, first, end).await?),
    };
    if mode == QueryMode::DumpFollow {
        // No notice here: the follow part goes on with entries older than
        // now, and clients that keep a time cursor (the agent's log
        // shipper) would skip them. The counters say what was missed.
        return follow(shared, reader, stream, end).await;
    }
    if let Some(missing) = missing {
        send_notice(stream, &missing).await?;
    }
    shared.reader_done(reader);
    stream.shutdown().await
}

async fn send_stats(shared: &Shared, stream: &mut UnixStream) -> io::Result<()> {
    let mut out = Vec::new();
    for line in shared.stats_lines() {
        serde_json::to_writer(&mut out, &line).map_err(io::Error::other)?;
        out.push(b'\n');
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// What a dump could not deliver.
#[derive(Debug)]
struct Missing {
    lost: u64,
    of: u64,
    why: String,
}

/// Sends the reader's snapshot; says what was dropped from it.
async fn send_snapshot(
    shared: &Shared,
    reader: &Reader,
    stream: &mut UnixStream,
) -> io::Result<Option<Missing>> {
    let mut buf = Vec::with_capacity(BATCH_BYTES);
    while shared.read_snapshot(reader, &mut buf, BATCH_BYTES) > 0 {
        stream.write_all(&buf).await?;
        buf.clear();
    }
    Ok(shared
        .end_snapshot(reader)
        .filter(|short| short.dropped > 0)
        .map(|short| Missing {
            lost: short.dropped,
            of: short.taken,
            why: format!(
                "dropped to keep dump memory within -max-dump-bytes {}",
                shared.cfg.dump_budget()
            ),
        }))
}

/// Sends entries `cursor..end` still held by the live ring; says how many
/// were evicted before they could be sent.
async fn send_range(
    shared: &Shared,
    reader: &Reader,
    stream: &mut UnixStream,
    mut cursor: u64,
    end: u64,
) -> io::Result<Option<Missing>> {
    let first = cursor;
    let dropped_before = reader.dropped();
    let mut buf = Vec::with_capacity(BATCH_BYTES);
    while cursor < end {
        buf.clear();
        if shared.read_batch(reader, &mut cursor, end, &mut buf, BATCH_BYTES) == 0 {
            break;
        }
        stream.write_all(&buf).await?;
    }
    let lost = reader.dropped() - dropped_before;
    Ok((lost > 0).then(|| Missing {
        lost,
        of: end - first,
        why: format!(
            "evicted before they were sent; the dump's snapshot did not fit in \
             -max-dump-bytes {}",
            shared.cfg.dump_budget()
        ),
    }))
}

/// The last entry of an incomplete dump (mode 0): a memlogd entry, which any
/// linuxkit-compatible client prints like any other, saying what is missing.
async fn send_notice(stream: &mut UnixStream, missing: &Missing) -> io::Result<()> {
    let Missing { lost, of, why } = missing;
    let msg = format!(
        "{NOTICE_PREFIX} {lost} of the {of} entries held when this dump started are missing ({why})"
    );
    let mut line = Vec::new();
    encode_entry(&mut line, SystemTime::now(), crate::SELF_SOURCE, &msg);
    stream.write_all(&line).await
}

/// Sends entries from `cursor` on, forever; returns when the reader hangs up.
async fn follow(
    shared: &Shared,
    reader: &Reader,
    stream: &mut UnixStream,
    mut cursor: u64,
) -> io::Result<()> {
    let mut seq = shared.subscribe();
    let mut buf = Vec::with_capacity(BATCH_BYTES);
    // Whether to watch the socket for the reader hanging up while idle; off
    // once the reader shut down only its sending side (it may still read).
    let mut watch_peer = true;
    loop {
        seq.borrow_and_update();
        buf.clear();
        if shared.read_batch(reader, &mut cursor, u64::MAX, &mut buf, BATCH_BYTES) > 0 {
            stream.write_all(&buf).await?;
            continue;
        }
        if buf.capacity() > BATCH_BYTES * 2 {
            buf = Vec::with_capacity(BATCH_BYTES);
        }
        // Idle: wait for new entries, but notice a reader that hangs up.
        tokio::select! {
            changed = seq.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            ready = stream.readable(), if watch_peer => {
                ready?;
                let mut junk = [0u8; 256];
                match stream.try_read(&mut junk) {
                    Ok(0) if peer_gone(stream) => return Ok(()),
                    Ok(0) => watch_peer = false,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// After a read returned EOF: has the peer closed the connection entirely
/// (`POLLHUP`), rather than only shut down its sending side?
fn peer_gone(stream: &UnixStream) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
        Err(_) => true,
    }
}
