//! Turns memlogd entries into log batches for the queue ([`crate::logq`]).
//!
//! Pure: no I/O and no clock of its own; the caller passes `now`, so the
//! rules are tested with plain values.
//!
//! * A batch is cut when it holds `max_lines` lines, when one more line
//!   would take it over `max_bytes` (a single longer line goes alone), or
//!   when its first line has waited `max_wait`.
//! * Each batch carries the [`Cursor`] after its last line. memlogd lines
//!   have no sequence number, so the cursor is the line's timestamp and how
//!   many lines in a row had exactly that timestamp.
//! * A memlogd stream followed from the oldest entry replays the ring: lines
//!   the cursor covers were queued already and are skipped. Once a stream
//!   yields a line the cursor does not cover, every later line of that
//!   stream is new, even one stamped earlier (the clock went back).
//! * The cursor only moves forward, so a line is never queued twice after a
//!   restart. It is valid within one boot only ([`resume_cursor`]).

use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::logq::Cursor;

/// When a batch is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most lines in one batch.
    pub max_lines: usize,
    /// Most bytes (uncompressed JSON lines) in one batch, unless a single
    /// line is longer.
    pub max_bytes: usize,
    /// Longest time a line waits before its batch is cut.
    pub max_wait: Duration,
}

/// One memlogd entry, as the batcher needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// When memlogd received it.
    pub time: OffsetDateTime,
    /// memlogd source (`guest_vm-<task>`, `outpostd`, …).
    pub source: String,
    /// The line.
    pub msg: String,
}

/// A cut batch: JSON lines (`outpost_api::cloud::LogEntry`) and the cursor
/// after the last of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The lines, one JSON object each.
    pub lines: Vec<String>,
    /// Where the reader stands once this batch is queued.
    pub cursor: Cursor,
}

/// Accumulates lines into batches; see the module docs for the rules.
#[derive(Debug)]
pub struct Batcher {
    limits: Limits,
    /// High-water mark over every line taken.
    cursor: Cursor,
    /// Timestamp of the previous line of this stream and its rank among
    /// lines in a row with that timestamp.
    last: Option<(i128, u32)>,
    /// Whether this stream has passed the cursor (it is past the replay).
    live: bool,
    lines: Vec<String>,
    bytes: usize,
    first_at: Option<Instant>,
}

/// The cursor to resume from: the queue's cursor when the saved boot id is
/// this boot's, else the start (memlogd's ring starts empty after a reboot,
/// and a clock that went back must not hide the new boot's lines).
pub fn resume_cursor(saved_boot: Option<&str>, boot: &str, queued: Cursor) -> Cursor {
    match saved_boot {
        Some(b) if b.trim() == boot.trim() && !boot.trim().is_empty() => queued,
        _ => Cursor::default(),
    }
}

/// The app a memlogd source belongs to (`guest_vm[_err]-<uuid>.<version>.<n>`).
pub fn app_of_source(source: &str) -> Option<String> {
    let task = source
        .strip_prefix("guest_vm_err-")
        .or_else(|| source.strip_prefix("guest_vm-"))?;
    Some(task.split('.').next()?.to_owned())
}

impl Batcher {
    /// A batcher that skips what `resume` covers.
    pub fn new(limits: Limits, resume: Cursor) -> Self {
        Batcher {
            limits,
            cursor: resume,
            last: None,
            live: false,
            lines: Vec::new(),
            bytes: 0,
            first_at: None,
        }
    }

    /// The follower (re)connected: the next lines replay the ring from its
    /// oldest entry, so the cursor filters them again.
    pub fn new_stream(&mut self) {
        self.last = None;
        self.live = false;
    }

    /// Where the reader stands, pending lines included.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Lines waiting in the open batch.
    pub fn pending(&self) -> usize {
        self.lines.len()
    }

    /// Takes one entry received at `now`. Returns a batch when one is cut
    /// (by a bound; a due time is checked by [`Batcher::due`]).
    pub fn push(&mut self, line: Line, now: Instant) -> Option<Batch> {
        let nanos = line.time.unix_timestamp_nanos();
        let nth = match self.last {
            Some((n, k)) if n == nanos => k + 1,
            _ => 1,
        };
        self.last = Some((nanos, nth));
        if !self.live && self.cursor.covers(nanos, nth) {
            return None;
        }
        self.live = true;
        let text = serde_json::to_string(&outpost_api::cloud::LogEntry {
            time: line.time.format(&Rfc3339).unwrap_or_default(),
            app: app_of_source(&line.source),
            source: line.source,
            msg: line.msg,
        })
        .expect("a log entry serialises");
        let cut = if !self.lines.is_empty() && self.bytes + text.len() > self.limits.max_bytes {
            self.flush()
        } else {
            None
        };
        self.cursor = self.cursor.max(Cursor { nanos, same: nth });
        self.bytes += text.len();
        self.lines.push(text);
        self.first_at.get_or_insert(now);
        if cut.is_some() {
            return cut;
        }
        if self.lines.len() >= self.limits.max_lines || self.bytes >= self.limits.max_bytes {
            return self.flush();
        }
        None
    }

    /// How long until the open batch is due; `None` when it is empty.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.first_at.map(|t| {
            self.limits
                .max_wait
                .saturating_sub(now.saturating_duration_since(t))
        })
    }

    /// The open batch when its first line has waited `max_wait` by `now`.
    pub fn due(&mut self, now: Instant) -> Option<Batch> {
        match self.wait(now) {
            Some(w) if w.is_zero() => self.flush(),
            _ => None,
        }
    }

    /// The open batch now, whatever its size; `None` when it is empty.
    pub fn flush(&mut self) -> Option<Batch> {
        if self.lines.is_empty() {
            return None;
        }
        self.bytes = 0;
        self.first_at = None;
        Some(Batch {
            lines: std::mem::take(&mut self.lines),
            cursor: self.cursor,
        })
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
