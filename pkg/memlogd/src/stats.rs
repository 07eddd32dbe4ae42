//! Counters served by query mode 3: one JSON object per line, each tagged
//! with `"kind"`: first `totals`, then one `source` per source, then one
//! `reader` per active query connection.

use serde::{Deserialize, Serialize};

/// Daemon-wide counters, current fill and bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Entries held in the ring now.
    pub lines: u64,
    /// Bytes held in the ring now (sum of the encoded JSON lines).
    pub bytes: u64,
    /// Line bound (`-max-lines`).
    pub max_lines: u64,
    /// Byte bound (`-max-bytes`).
    pub max_bytes: u64,
    /// Line length bound (`-max-line-len`).
    pub max_line_len: u64,
    /// Lines received from all sources since start (memlogd's own included).
    pub received: u64,
    /// Of those, lines that were truncated.
    pub truncated: u64,
    /// Entries evicted from the ring since start.
    pub evicted: u64,
    /// Streams (fds) being read now.
    pub streams_active: u64,
    /// Streams registered since start.
    pub streams_opened: u64,
    /// Fds refused: unsupported kind, or over `-max-streams`.
    pub streams_rejected: u64,
    /// FIFO streams closed because their FIFO was unlinked.
    pub fifos_released: u64,
    /// Datagrams ignored or refused (no fd, bad name, truncated).
    pub rejected_datagrams: u64,
    /// Query connections active now (this stats request included).
    pub readers_active: u64,
    /// Query connections refused because `-max-readers` were active.
    pub readers_rejected: u64,
    /// Query connections closed for an unknown or missing mode byte.
    pub bad_modes: u64,
    /// Entries lost by readers that fell behind (closed readers included).
    pub reader_drops: u64,
    /// memlogd's own messages suppressed by its rate limit.
    pub self_suppressed: u64,
    /// Bound on the bytes dump snapshots keep alive beyond the ring (`-max-dump-bytes`).
    #[serde(default)]
    pub max_dump_bytes: u64,
    /// Bytes dump snapshots keep alive beyond the ring now (their queues and
    /// the entries evicted since they were taken).
    #[serde(default)]
    pub dump_bytes: u64,
    /// Entries taken out of dump snapshots to stay within `max_dump_bytes`
    /// (not delivered), since start.
    #[serde(default)]
    pub dump_drops: u64,
    /// Dumps served from the live ring because their snapshot did not fit in
    /// `max_dump_bytes` (entries evicted before they were sent count as
    /// reader drops).
    #[serde(default)]
    pub dumps_unsnapshotted: u64,
}

/// Counters of one source (stream name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStats {
    /// The stream name.
    pub source: String,
    /// Fds being read under this name now.
    pub streams: u64,
    /// Lines received.
    pub received: u64,
    /// Lines truncated to `max_line_len`.
    pub truncated: u64,
    /// Entries evicted from the ring.
    pub evicted: u64,
    /// Entries held in the ring now.
    pub lines: u64,
    /// Bytes held in the ring now.
    pub bytes: u64,
}

/// Counters of one active query connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderStats {
    /// Connection number (in accept order).
    pub id: u64,
    /// `dump`, `follow`, `dump-follow` or `stats`.
    pub mode: String,
    /// Entries handed to the connection.
    pub sent: u64,
    /// Entries this reader lost: evicted before they could be sent to it, or
    /// taken out of its dump snapshot over the budget.
    pub dropped: u64,
}

/// One line of the stats answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatsLine {
    /// Daemon-wide counters.
    Totals(Totals),
    /// One source.
    Source(SourceStats),
    /// One reader.
    Reader(ReaderStats),
    /// A kind this client does not know (newer memlogd); ignored.
    #[serde(other)]
    Unknown,
}

/// The whole stats answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Daemon-wide counters.
    pub totals: Totals,
    /// Per source, sorted by name.
    pub sources: Vec<SourceStats>,
    /// Per active reader, by id.
    pub readers: Vec<ReaderStats>,
}

impl Stats {
    /// The counters of `name`, if memlogd knows that source.
    pub fn source(&self, name: &str) -> Option<&SourceStats> {
        self.sources.iter().find(|s| s.source == name)
    }

    /// Names of the sources with at least one stream being read.
    pub fn active_sources(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter(|s| s.streams > 0)
            .map(|s| s.source.clone())
            .collect()
    }

    /// Collects parsed lines into one value.
    pub fn from_lines(lines: impl IntoIterator<Item = StatsLine>) -> Self {
        let mut stats = Stats::default();
        for line in lines {
            match line {
                StatsLine::Totals(t) => stats.totals = t,
                StatsLine::Source(s) => stats.sources.push(s),
                StatsLine::Reader(r) => stats.readers.push(r),
                StatsLine::Unknown => {}
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_unknown_kinds() {
        let lines = [
            r#"{"kind":"totals","lines":1,"bytes":2,"max_lines":3,"max_bytes":4,"max_line_len":5,"received":6,"truncated":0,"evicted":0,"streams_active":1,"streams_opened":1,"streams_rejected":0,"fifos_released":0,"rejected_datagrams":0,"readers_active":1,"readers_rejected":0,"bad_modes":0,"reader_drops":0,"self_suppressed":0}"#,
            r#"{"kind":"source","source":"a","streams":1,"received":6,"truncated":0,"evicted":0,"lines":1,"bytes":2}"#,
            r#"{"kind":"source","source":"b","streams":0,"received":0,"truncated":0,"evicted":0,"lines":0,"bytes":0}"#,
            r#"{"kind":"reader","id":7,"mode":"stats","sent":0,"dropped":0}"#,
            r#"{"kind":"future","x":1}"#,
        ];
        let parsed: Vec<StatsLine> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let s = Stats::from_lines(parsed.clone());
        assert_eq!(s.totals.received, 6);
        assert_eq!(s.sources.len(), 2);
        assert_eq!(s.readers[0].id, 7);
        assert_eq!(s.active_sources(), ["a"]);
        assert_eq!(s.source("b").unwrap().streams, 0);
        let again = serde_json::to_string(&parsed[1]).unwrap();
        assert_eq!(again, lines[1]);
    }
}
