//! State shared by all of the daemon's tasks: the ring, the dump snapshots,
//! per-source and per-reader counters, and the notification followers wait on.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;

use super::reader::Reader;
use super::snapshot::{Line, Shortfall, Snapshots};
use crate::client::QueryMode;
use crate::config::Config;
use crate::encode::encode_entry;
use crate::ring::{Ring, RingItem};
use crate::stats::{ReaderStats, SourceStats, StatsLine, Totals};

/// Sources tracked before idle ones (no stream, nothing in the ring) are forgotten.
const MAX_TRACKED_SOURCES: usize = 1024;
/// memlogd's own messages allowed per window before they are suppressed.
const SELF_LOG_BURST: u32 = 20;
const SELF_LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// One ring entry: its source and its encoded JSON line (shared with the
/// dump snapshots that hold it).
#[derive(Debug)]
struct Entry {
    source: Arc<str>,
    line: Line,
}

impl RingItem for Entry {
    fn size(&self) -> usize {
        self.line.len()
    }
}

#[derive(Debug, Default)]
struct SourceCounters {
    streams: u64,
    received: u64,
    truncated: u64,
    evicted: u64,
    lines: u64,
    bytes: u64,
}

/// Counters kept outside the lock.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub streams_rejected: AtomicU64,
    pub fifos_released: AtomicU64,
    pub rejected_datagrams: AtomicU64,
    pub readers_rejected: AtomicU64,
    pub bad_modes: AtomicU64,
}

#[derive(Debug)]
struct State {
    ring: Ring<Entry>,
    dumps: Snapshots,
    sources: HashMap<Arc<str>, SourceCounters>,
    readers: BTreeMap<u64, Arc<Reader>>,
    next_reader: u64,
    received: u64,
    truncated: u64,
    evicted: u64,
    streams_active: u64,
    streams_opened: u64,
    closed_reader_drops: u64,
    self_window: Instant,
    self_count: u32,
    self_pending_suppressed: u64,
    self_suppressed: u64,
}

/// Everything the tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    pub counters: Counters,
    state: Mutex<State>,
    seq_tx: watch::Sender<u64>,
    stop: Arc<watch::Sender<bool>>,
    stderr: std::sync::mpsc::SyncSender<String>,
}

/// A line ready for the ring: encoded entry and whether it was truncated.
pub(crate) type EncodedLine = (Line, bool);

/// Where a query connection starts, fixed under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Stats: no entries.
    Stats,
    /// Follow from this sequence number.
    Follow(u64),
    /// Dump the reader's snapshot; a follow continues at `end`.
    Snapshot {
        /// Sequence number after the last entry of the snapshot.
        end: u64,
    },
    /// Dump `first..end` from the live ring (the snapshot did not fit).
    Range {
        /// Oldest entry held when the dump started.
        first: u64,
        /// Sequence number after the last entry held when the dump started.
        end: u64,
    },
}

impl Shared {
    pub fn new(cfg: Config, stop: Arc<watch::Sender<bool>>) -> Arc<Self> {
        let state = State {
            ring: Ring::new(cfg.max_lines, cfg.max_bytes),
            dumps: Snapshots::new(cfg.dump_budget()),
            sources: HashMap::new(),
            readers: BTreeMap::new(),
            next_reader: 1,
            received: 0,
            truncated: 0,
            evicted: 0,
            streams_active: 0,
            streams_opened: 0,
            closed_reader_drops: 0,
            self_window: Instant::now(),
            self_count: 0,
            self_pending_suppressed: 0,
            self_suppressed: 0,
        };
        Arc::new(Shared {
            cfg,
            counters: Counters::default(),
            state: Mutex::new(state),
            seq_tx: watch::channel(0).0,
            stop,
            stderr: stderr_writer(),
        })
    }

    /// Spawns `fut` on the runtime, cancelled (dropped) when the server stops.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = fut => {}
            }
        });
    }

    /// Whether the server is stopping (for blocking readers).
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the ring inconsistent in
        // a way worse than losing entries, so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers one more stream under `name`; `None` when `max_streams` are open.
    pub fn open_stream(&self, name: &str) -> Option<Arc<str>> {
        let mut st = self.lock();
        if st.streams_active >= self.cfg.max_streams as u64 {
            return None;
        }
        let key = st.source_key(name);
        if let Some(src) = st.sources.get_mut(&key) {
            src.streams += 1;
        }
        st.streams_active += 1;
        st.streams_opened += 1;
        Some(key)
    }

    /// A stream registered with `open_stream` ended.
    pub fn close_stream(&self, name: &Arc<str>) {
        let mut st = self.lock();
        if let Some(src) = st.sources.get_mut(name) {
            src.streams = src.streams.saturating_sub(1);
        }
        st.streams_active = st.streams_active.saturating_sub(1);
    }

    /// Appends lines of `source` to the ring and wakes followers.
    pub fn push_lines(&self, source: &Arc<str>, lines: Vec<EncodedLine>) {
        if lines.is_empty() {
            return;
        }
        let next = {
            let mut st = self.lock();
            st.push(source, lines);
            st.ring.next_seq()
        };
        self.seq_tx.send_replace(next);
    }

    /// memlogd's own message: to stderr and to the ring as source `memlogd`,
    /// at most 20 per 10 s (the rest are counted and mentioned later).
    pub fn log(&self, msg: impl AsRef<str>) {
        let next = {
            let mut st = self.lock();
            let now = Instant::now();
            if now.duration_since(st.self_window) >= SELF_LOG_WINDOW {
                st.self_window = now;
                st.self_count = 0;
            }
            if st.self_count >= SELF_LOG_BURST {
                st.self_pending_suppressed += 1;
                st.self_suppressed += 1;
                return;
            }
            st.self_count += 1;
            let mut text = msg.as_ref().to_string();
            if st.self_pending_suppressed > 0 {
                text.push_str(&format!(
                    " ({} earlier memlogd messages suppressed)",
                    st.self_pending_suppressed
                ));
                st.self_pending_suppressed = 0;
            }
            // Never block on a stuck stderr: hand the text to a thread, or drop it.
            let _ = self.stderr.try_send(format!("memlogd: {text}\n"));
            let mut line = Vec::new();
            encode_entry(&mut line, SystemTime::now(), crate::SELF_SOURCE, &text);
            let source = st.source_key(crate::SELF_SOURCE);
            st.push(&source, vec![(Line::from(line), false)]);
            st.ring.next_seq()
        };
        self.seq_tx.send_replace(next);
    }

    /// Watch channel carrying the next sequence number; changes on every push.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq_tx.subscribe()
    }

    /// Registers a query connection; `None` when `max_readers` are active.
    pub fn add_reader(&self) -> Option<Arc<Reader>> {
        let mut st = self.lock();
        if st.readers.len() >= self.cfg.max_readers {
            return None;
        }
        let id = st.next_reader;
        st.next_reader += 1;
        let reader = Arc::new(Reader::new(id));
        st.readers.insert(id, reader.clone());
        Some(reader)
    }

    /// A query connection ended: its snapshot is released, its drops move to
    /// the totals.
    pub fn remove_reader(&self, reader: &Reader) {
        let mut st = self.lock();
        st.dumps.remove(reader);
        let first = st.ring.first_seq();
        if st.readers.remove(&reader.id).is_some() {
            st.closed_reader_drops += reader.dropped_now(first);
        }
    }

    /// Fixes where `reader` starts for `mode`, taking a dump's snapshot, before
    /// the mode shows in the stats: a client that sees itself listed knows
    /// every later entry will reach it.
    pub fn begin(&self, reader: &Arc<Reader>, mode: QueryMode) -> Start {
        let mut st = self.lock();
        let st = &mut *st;
        let (first, next) = (st.ring.first_seq(), st.ring.next_seq());
        let start = match mode {
            QueryMode::Stats => Start::Stats,
            QueryMode::Follow => Start::Follow(next),
            QueryMode::Dump | QueryMode::DumpFollow => {
                let lines = st.ring.iter().map(|e| &e.line);
                if st.dumps.take(reader, first, lines) {
                    Start::Snapshot { end: next }
                } else {
                    Start::Range { first, end: next }
                }
            }
        };
        // What the reader reads from the live ring, for its lag in the stats.
        let follows = mode == QueryMode::DumpFollow;
        let (cursor, end) = match start {
            Start::Stats => (None, u64::MAX),
            Start::Follow(from) => (Some(from), u64::MAX),
            Start::Snapshot { end } => (follows.then_some(end), u64::MAX),
            Start::Range { first, end } => (Some(first), if follows { u64::MAX } else { end }),
        };
        reader.begin(mode, cursor, end);
        start
    }

    /// Copies the next entries of `reader`'s snapshot (at least `max_bytes`
    /// or to its end) into `out`; returns how many (0 when it is exhausted).
    pub fn read_snapshot(&self, reader: &Reader, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        self.lock().dumps.read(reader, out, max_bytes)
    }

    /// `reader` sent its whole snapshot: release it and say what it missed.
    pub fn end_snapshot(&self, reader: &Reader) -> Option<Shortfall> {
        self.lock().dumps.remove(reader)
    }

    /// Copies the encoded lines from `*cursor` (up to `end`, at most
    /// `max_bytes` or so) into `out`, advances the cursor and counts what the
    /// reader lost to eviction. Returns the number of entries copied.
    pub fn read_batch(
        &self,
        reader: &Reader,
        cursor: &mut u64,
        end: u64,
        out: &mut Vec<u8>,
        max_bytes: usize,
    ) -> usize {
        let st = self.lock();
        let slice = st.ring.read_from(*cursor, end, usize::MAX, max_bytes, |e| {
            out.extend_from_slice(&e.line)
        });
        let lost = slice.start.min(end).saturating_sub(*cursor);
        if lost > 0 {
            reader.add_dropped(lost);
        }
        *cursor = (slice.start + slice.count as u64).max(*cursor);
        reader.set_cursor(*cursor);
        reader.add_sent(slice.count as u64);
        slice.count
    }

    /// A reader that is done (dump finished) or not started no longer lags.
    pub fn reader_done(&self, reader: &Reader) {
        reader.set_cursor(u64::MAX);
    }

    /// The stats answer, in protocol order.
    pub fn stats_lines(&self) -> Vec<StatsLine> {
        let st = self.lock();
        let first = st.ring.first_seq();
        let c = &self.counters;
        let live_drops: u64 = st.readers.values().map(|r| r.dropped_now(first)).sum();
        let totals = Totals {
            lines: st.ring.len() as u64,
            bytes: st.ring.bytes() as u64,
            max_lines: self.cfg.max_lines as u64,
            max_bytes: self.cfg.max_bytes as u64,
            max_line_len: self.cfg.max_line_len as u64,
            received: st.received,
            truncated: st.truncated,
            evicted: st.evicted,
            streams_active: st.streams_active,
            streams_opened: st.streams_opened,
            streams_rejected: c.streams_rejected.load(Relaxed),
            fifos_released: c.fifos_released.load(Relaxed),
            rejected_datagrams: c.rejected_datagrams.load(Relaxed),
            readers_active: st.readers.len() as u64,
            readers_rejected: c.readers_rejected.load(Relaxed),
            bad_modes: c.bad_modes.load(Relaxed),
            reader_drops: st.closed_reader_drops + live_drops,
            self_suppressed: st.self_suppressed,
            max_dump_bytes: st.dumps.budget() as u64,
            dump_bytes: st.dumps.charged() as u64,
            dump_drops: st.dumps.dropped(),
            dumps_unsnapshotted: st.dumps.refused(),
        };
        let mut lines = vec![StatsLine::Totals(totals)];
        let mut sources: Vec<_> = st.sources.iter().collect();
        sources.sort_by(|a, b| a.0.cmp(b.0));
        lines.extend(sources.into_iter().map(|(name, s)| {
            StatsLine::Source(SourceStats {
                source: name.to_string(),
                streams: s.streams,
                received: s.received,
                truncated: s.truncated,
                evicted: s.evicted,
                lines: s.lines,
                bytes: s.bytes,
            })
        }));
        lines.extend(st.readers.values().map(|r| {
            StatsLine::Reader(ReaderStats {
                id: r.id,
                mode: r.mode_name().to_string(),
                sent: r.sent(),
                dropped: r.dropped_now(first),
            })
        }));
        lines
    }
}

/// A thread copying memlogd's own messages to stderr; it ends when the
/// sender is dropped. Up to 64 messages wait; more are dropped.
fn stderr_writer() -> std::sync::mpsc::SyncSender<String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(64);
    let _ = std::thread::Builder::new()
        .name("memlogd-stderr".into())
        .spawn(move || {
            use std::io::Write;
            for msg in rx {
                let _ = std::io::stderr().write_all(msg.as_bytes());
            }
        });
    tx
}

impl State {
    /// The shared key for `name`, creating its counters (and forgetting idle
    /// sources when too many are tracked).
    fn source_key(&mut self, name: &str) -> Arc<str> {
        if let Some((k, _)) = self.sources.get_key_value(name) {
            return k.clone();
        }
        if self.sources.len() >= MAX_TRACKED_SOURCES {
            self.sources.retain(|_, s| s.streams > 0 || s.lines > 0);
        }
        let key: Arc<str> = Arc::from(name);
        self.sources.insert(key.clone(), SourceCounters::default());
        key
    }

    fn push(&mut self, source: &Arc<str>, lines: Vec<EncodedLine>) {
        let State {
            ring,
            dumps,
            sources,
            received,
            truncated,
            evicted,
            ..
        } = self;
        // Counters of `source` are accumulated locally (signed: this batch may
        // evict more of the source's older entries than it adds).
        let (mut got, mut cut, mut gone, mut d_lines, mut d_bytes) = (0u64, 0u64, 0u64, 0i64, 0i64);
        for (line, was_truncated) in lines {
            got += 1;
            cut += u64::from(was_truncated);
            d_lines += 1;
            d_bytes += line.len() as i64;
            let entry = Entry {
                source: source.clone(),
                line,
            };
            ring.push(entry, |old| {
                dumps.on_evict(&old.line);
                *evicted += 1;
                if Arc::ptr_eq(&old.source, source) {
                    gone += 1;
                    d_lines -= 1;
                    d_bytes -= old.line.len() as i64;
                } else if let Some(s) = sources.get_mut(&old.source) {
                    s.evicted += 1;
                    s.lines = s.lines.saturating_sub(1);
                    s.bytes = s.bytes.saturating_sub(old.line.len() as u64);
                }
            });
        }
        dumps.enforce(ring.first_seq(), 0);
        *received += got;
        *truncated += cut;
        if let Some(s) = sources.get_mut(source) {
            s.received += got;
            s.truncated += cut;
            s.evicted += gone;
            s.lines = s.lines.saturating_add_signed(d_lines);
            s.bytes = s.bytes.saturating_add_signed(d_bytes);
        }
    }
}
