//! memlogd: a linuxkit-compatible in-memory log daemon, its `logread` and
//! `logwrite` tools, and the small client API the Outpost agent uses.
//!
//! # Wire protocol (linuxkit-compatible)
//!
//! * **Write side**, a datagram socket (default
//!   `/run/linuxkit-external-logging.sock`). A client registers a stream by
//!   sending one datagram whose payload is the raw stream name (no length, no
//!   terminator) with the file descriptor(s) in `SCM_RIGHTS`. There is no
//!   reply. memlogd reads lines from each fd until EOF; each line becomes an
//!   entry `{time: receive time, source: name, msg: line}`. Lines longer than
//!   `-max-line-len` bytes are truncated (the rest of the line is dropped).
//!   See [`register_fds`].
//! * **Query side**, a stream socket (default `/run/memlogdq.sock`). The client
//!   sends one mode byte: `0` dump (then close), `1` follow, `2` dump then
//!   follow. The answer is newline-delimited JSON
//!   `{"time":"<RFC3339Nano>","source":"…","msg":"…"}`, encoded byte for byte
//!   as Go's `encoding/json` does (HTML characters escaped, trailing zeros of
//!   the fraction trimmed). Mode `3` (an Outpost extension that linuxkit
//!   clients never send) answers the counters as JSON lines, see [`Stats`].
//!   Any other mode byte closes the connection and is counted.
//!
//! # Bounds and counters
//!
//! The ring is bounded by lines (`-max-lines`, default 5000) **and** bytes
//! (`-max-bytes`, default 8 MiB, counted as the size of the encoded JSON lines
//! held, i.e. exactly what a dump sends). When either bound is hit the oldest
//! entries are evicted. Memory used by the ring is about `max-bytes` plus
//! ~64 bytes per entry of bookkeeping (bounded by `max-lines`). Per source
//! memlogd counts lines received, truncated and evicted.
//!
//! Each stream is read 64 KiB at a time into a per-thread buffer (an idle
//! stream holds only its unfinished line, at most `max-line-len + 1` bytes),
//! and yields to other tasks after every read, so a flooding writer cannot
//! starve readers or other streams.
//!
//! A follower is a cursor into the ring, so the ring itself is every
//! follower's bounded queue: no entry is copied per reader, and a slow or
//! stuck reader never blocks writers or other readers. When entries a
//! follower has not yet been sent are evicted, they are lost for that reader
//! only and counted in its `dropped` counter (shown live by the stats mode).
//!
//! A dump (mode 0, and the history part of mode 2) sends exactly the entries
//! held when it started, in order, however slowly it is read: it takes a
//! snapshot of shared references to them (one pointer copy per entry, no
//! line copied). What snapshots keep alive after the ring evicted it, plus
//! their queues (16 bytes per entry), is bounded by `-max-dump-bytes`
//! (default: the same as `-max-bytes`, so memory is at most about twice the
//! ring's). Over that budget the oldest such entries are taken out of the
//! snapshots holding them; a dump whose queue does not fit is served from the
//! live ring like a follower. Either way the reader's `dropped` counter and
//! the totals count what it missed, and an incomplete dump ends with an entry
//! of source `memlogd` whose message starts `dump incomplete:` (mode 0 only:
//! in mode 2 the follow part goes on and only the counters tell).
//!
//! # Stream kinds and FIFO lifetime
//!
//! Pipes, FIFOs, sockets and character devices are read non-blocking through
//! the event loop (memlogd sets `O_NONBLOCK` on the received open file
//! description, which the sender shares); regular files are read to EOF on a
//! blocking thread; anything else (directories, …) is refused and closed.
//!
//! Task logs use FIFOs that the agent opens `O_RDWR` before handing them over
//! (see [`attach_task_logs`]): because memlogd's own fd counts as a writer,
//! memlogd never sees EOF when the task's writer (the containerd shim) closes
//! the FIFO on task exit, and it keeps reading under the same name when the
//! next task instance opens it again. To release such a stream, memlogd checks
//! every FIFO stream with `fstat` (every `-fifo-check-interval`, default 2 s,
//! whether idle or busy): once `st_nlink == 0` — the FIFO was unlinked, see
//! [`remove_task_logs`] — it drains what is buffered and closes the fd, so
//! deleting an app frees memlogd's fd. A FIFO made again under the same path
//! before that check (an app removed and added back at once) is a new inode
//! with no reader: [`ensure_task_logs`] attaches it whatever memlogd lists,
//! and memlogd reads both streams under the one name until the old one is
//! released.
//!
//! # Deviations from linuxkit (deliberate)
//!
//! * Datagrams are validated: no fd → ignored and counted; empty name or a name
//!   over [`MAX_NAME_LEN`] bytes → the fds are closed and the datagram is
//!   counted as rejected. Several fds in one datagram are each registered under
//!   the name, as linuxkit does; more than the kernel limit (253) cannot be
//!   sent at all. Received fds are `CLOEXEC` (`MSG_CMSG_CLOEXEC`).
//! * Lines are stored as UTF-8, invalid bytes replaced by U+FFFD; truncation
//!   does not leave half a character at the end.
//! * Times are always UTC (`Z`); linuxkit uses the local zone, which is UTC on
//!   a linuxkit device.
//! * memlogd does not echo every entry to its stdout (a blocked console would
//!   stall ingestion); its own messages go to stderr and to the ring as source
//!   `memlogd`, rate-limited.
//! * A query connection that sends no mode byte within 10 s is closed;
//!   followers that hang up are noticed even when no log arrives; at most
//!   `-max-readers` query connections and `-max-streams` streams are served.
//! * A dump holds references to the ring's entries rather than a copy of the
//!   ring (as linuxkit takes), and only within `-max-dump-bytes`: a dump read
//!   more slowly than the ring wraps may miss entries once that budget is
//!   used up, and says so in a final `memlogd` entry.
//! * A stale socket file left by a dead memlogd is replaced at start-up; the
//!   socket files are removed on SIGTERM/SIGINT.
//! * Errors and end of stream do not panic `logread`; `logwrite` names its
//!   streams `NAME.out` (stdout) and `NAME` (stderr), like linuxkit's service
//!   logging (older linuxkit `logwrite` used `NAME.stdout`/`NAME.stderr`).
//!
//! # Current limitations
//!
//! * If memlogd dies while a task runs, the FIFO has no reader left and the
//!   shim's writes fail with `EPIPE`; [`ensure_task_logs`] re-attaches the FIFO
//!   when memlogd is back, but whether the shim resumes copying depends on the
//!   shim. Nothing is persisted: the ring is memory only.
//! * `O_NONBLOCK` is set on the open file description memlogd receives, which
//!   a sender that keeps its own copy of the *same* description would see.
//!   Pipes, socket pairs and FIFOs opened for memlogd are unaffected.
//! * The client API is blocking; async callers use `spawn_blocking`.
//! * A `-daemonize`d memlogd serves inherited fds and does not know its socket
//!   paths, so it leaves the socket files behind when stopped (the next start
//!   replaces them).
//! * Per-reader fairness is best effort: on a saturated machine a follower
//!   that cannot keep up loses entries (counted), it never slows ingestion.

#![warn(missing_docs)]

pub mod cli;
mod client;
mod config;
mod encode;
mod entry;
mod error;
#[allow(unsafe_code)]
mod fdpass;
mod fifo;
mod goflag;
mod linesplit;
mod register;
mod ring;
mod server;
mod stats;
mod timefmt;

pub use client::{
    active_sources, dump, follow, stats, FollowFrom, LogStream, QueryConn, QueryMode,
};
pub use config::Config;
pub use entry::{escape_source, LogEntry};
pub use error::{Error, Result};
pub use fifo::{
    attach_task_logs, ensure_task_logs, fifo_task_ids, remove_task_logs, task_fifos, TaskFifos,
    STDERR_STREAM_PREFIX, STDOUT_STREAM_PREFIX,
};
pub use register::{register_fds, MAX_FDS_PER_DATAGRAM, MAX_NAME_LEN};
pub use server::{run, Server, ShutdownHandle};
pub use stats::{ReaderStats, SourceStats, Stats, StatsLine, Totals};
pub use timefmt::format_rfc3339_nano;

/// Default path of the write-side (fd registration) datagram socket.
pub const DEFAULT_LOG_SOCKET: &str = "/run/linuxkit-external-logging.sock";
/// Default path of the query stream socket.
pub const DEFAULT_QUERY_SOCKET: &str = "/run/memlogdq.sock";
/// Source name of memlogd's own messages.
pub const SELF_SOURCE: &str = "memlogd";
