//! The log shipper: a thread follows memlogd and feeds the batcher, which
//! cuts batches into the on-disk queue; a task uploads the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_cloud::batcher::{self, Batcher, Limits, Line};
use outpost_cloud::logq::LogQueue;
use outpost_cloud::{Backoff, Client};
use tokio::sync::Notify;

use super::link::{contact, failed};
use super::uploads::read_trim;
use crate::daemon::snapshot::Handle;

/// Most lines in one log batch.
const BATCH_LINES: usize = 1000;
/// Most bytes (uncompressed) in one log batch.
const BATCH_BYTES: usize = 256 << 10;

/// What the follower thread hands the shipper.
enum Follow {
    /// A new memlogd stream starts: it replays the ring from its oldest line.
    Stream,
    /// One entry.
    Entry(memlogd::LogEntry),
}

/// A thread that follows memlogd and cuts batches into the queue. It
/// resumes after the queue's cursor, so lines queued before an agent
/// restart are not queued again. Within one boot only: memlogd's ring
/// starts empty after a reboot, and a clock that went back must not hide
/// new lines (rules in [`outpost_cloud::batcher`]).
pub(super) fn spawn_log_reader(
    handle: &Handle,
    queue: Arc<LogQueue>,
    wake: Arc<Notify>,
    flush: Duration,
) {
    let query = handle.memlogd.query_socket.clone();
    let boot_file = handle.layout.persist().join("cloud").join("logq-boot-id");
    std::thread::Builder::new()
        .name("log-shipper".into())
        .spawn(move || {
            let boot = read_trim("/proc/sys/kernel/random/boot_id");
            let saved = std::fs::read_to_string(&boot_file).ok();
            let resume = batcher::resume_cursor(saved.as_deref(), &boot, queue.cursor());
            let _ = std::fs::write(&boot_file, &boot);
            let limits = Limits {
                max_lines: BATCH_LINES,
                max_bytes: BATCH_BYTES,
                max_wait: flush,
            };
            let erx = spawn_follower(query);
            let mut batcher = Batcher::new(limits, resume);
            loop {
                let timeout = batcher
                    .wait(Instant::now())
                    .unwrap_or(Duration::from_secs(3600));
                let cut = match erx.recv_timeout(timeout) {
                    Ok(Follow::Stream) => {
                        batcher.new_stream();
                        None
                    }
                    Ok(Follow::Entry(e)) => {
                        let line = Line {
                            time: e.time,
                            source: e.source,
                            msg: e.msg,
                        };
                        let now = Instant::now();
                        batcher.push(line, now).or_else(|| batcher.due(now))
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => batcher.due(Instant::now()),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                };
                let Some(batch) = cut else { continue };
                if let Err(e) = queue.push(&batch.lines, batch.cursor) {
                    tracing::error!("queueing a log batch: {e}");
                }
                wake.notify_one();
            }
        })
        .expect("spawning the log shipper");
}

/// A thread that follows memlogd from the oldest entry, again after each
/// broken connection. It feeds a bounded channel; when the shipper is
/// behind, memlogd drops for this reader and counts it.
fn spawn_follower(query: std::path::PathBuf) -> std::sync::mpsc::Receiver<Follow> {
    let (etx, erx) = std::sync::mpsc::sync_channel::<Follow>(4096);
    std::thread::Builder::new()
        .name("log-follow".into())
        .spawn(move || loop {
            match memlogd::follow(&query, memlogd::FollowFrom::Oldest, None) {
                Ok(stream) => {
                    if etx.send(Follow::Stream).is_err() {
                        return;
                    }
                    for e in stream {
                        match e {
                            Ok(e) => {
                                if etx.send(Follow::Entry(e)).is_err() {
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(e) => tracing::debug!("memlogd follow: {e}"),
            }
            std::thread::sleep(Duration::from_secs(2));
        })
        .expect("spawning the log follower");
    erx
}

pub(super) async fn log_upload_loop(
    handle: Handle,
    client: Client,
    uuid: String,
    queue: Arc<LogQueue>,
    wake: Arc<Notify>,
    backoff_max: Duration,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), backoff_max);
    loop {
        let next = {
            let q = queue.clone();
            tokio::task::spawn_blocking(move || q.oldest())
                .await
                .expect("queue read")
        };
        match next {
            Ok(Some((seq, body))) => match client.post_logs(&uuid, seq, body).await {
                Ok(ack) if ack.acked >= seq => {
                    contact(&handle);
                    backoff.reset();
                    queue.ack(ack.acked);
                }
                Ok(ack) => {
                    tracing::warn!(
                        batch = seq,
                        acked = ack.acked,
                        "controller did not take the log batch"
                    );
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    tracing::debug!("log upload: {e}");
                    failed(&handle, &e);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            },
            Ok(None) => {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
            Err(e) => {
                tracing::error!("log queue: {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
