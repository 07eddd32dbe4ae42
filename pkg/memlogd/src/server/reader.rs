//! Counters of one query connection, published for the stats.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::client::QueryMode;

/// One query connection. Entries it lags behind the ring (`cursor` below the
/// oldest entry held, up to `end`) are counted as dropped until it catches up.
#[derive(Debug)]
pub(crate) struct Reader {
    pub id: u64,
    mode: AtomicU8,
    cursor: AtomicU64,
    end: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

impl Reader {
    /// A reader that has not sent its mode byte yet.
    pub fn new(id: u64) -> Self {
        Reader {
            id,
            mode: AtomicU8::new(u8::MAX),
            cursor: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records the mode and, for readers of the live ring, the cursor they
    /// start from and the sequence number they stop before.
    pub fn begin(&self, mode: QueryMode, cursor: Option<u64>, end: u64) {
        if let Some(c) = cursor {
            self.cursor.store(c, Relaxed);
        }
        self.end.store(end, Relaxed);
        self.mode.store(mode as u8, Relaxed);
    }

    /// The reader moved its cursor in the live ring.
    pub fn set_cursor(&self, cursor: u64) {
        self.cursor.store(cursor, Relaxed);
    }

    /// `n` entries were handed to the connection.
    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Relaxed);
    }

    /// `n` entries were lost for this reader.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Entries lost so far, not counting the current lag.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Entries handed to the connection so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    /// `dump`, `follow`, … or `pending` before the mode byte.
    pub fn mode_name(&self) -> &'static str {
        match self.mode.load(Relaxed) {
            u8::MAX => "pending",
            b => QueryMode::from_byte(b).map_or("unknown", QueryMode::as_str),
        }
    }

    /// Entries lost, including those evicted before the cursor reached them.
    pub fn dropped_now(&self, first_seq: u64) -> u64 {
        let lag_end = first_seq.min(self.end.load(Relaxed));
        self.dropped.load(Relaxed) + lag_end.saturating_sub(self.cursor.load(Relaxed))
    }
}
