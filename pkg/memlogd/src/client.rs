//! Blocking query-side client: dump, follow, stats. (Async callers wrap these
//! in `spawn_blocking`; the protocol is one byte out, lines in.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::entry::LogEntry;
use crate::error::{Error, Result};
use crate::stats::{Stats, StatsLine};

/// How long dump and stats requests may take before the client gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The mode byte a query connection starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum QueryMode {
    /// `0`: send the ring, then close.
    Dump = 0,
    /// `1`: send entries as they arrive.
    Follow = 1,
    /// `2`: send the ring, then entries as they arrive.
    DumpFollow = 2,
    /// `3` (Outpost extension): send the counters as JSON lines, then close.
    Stats = 3,
}

impl QueryMode {
    /// The mode for a byte received on the wire, if it is one.
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => QueryMode::Dump,
            1 => QueryMode::Follow,
            2 => QueryMode::DumpFollow,
            3 => QueryMode::Stats,
            _ => return None,
        })
    }

    /// Name used in stats output.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryMode::Dump => "dump",
            QueryMode::Follow => "follow",
            QueryMode::DumpFollow => "dump-follow",
            QueryMode::Stats => "stats",
        }
    }
}

/// An open query connection that has sent its mode byte.
#[derive(Debug)]
pub struct QueryConn {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    line: String,
}

impl QueryConn {
    /// Connects to `query_socket` and sends `mode`. Dump and stats connections
    /// time out after 10 s without data; follow connections wait forever.
    pub fn connect(query_socket: &Path, mode: QueryMode) -> Result<Self> {
        let path = query_socket.to_path_buf();
        let mut stream = UnixStream::connect(query_socket).map_err(|source| Error::Connect {
            path: path.clone(),
            source,
        })?;
        let io = |source| Error::Query {
            path: path.clone(),
            source,
        };
        if matches!(mode, QueryMode::Dump | QueryMode::Stats) {
            stream.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        }
        stream.write_all(&[mode as u8]).map_err(io)?;
        Ok(QueryConn {
            path: path.clone(),
            reader: BufReader::with_capacity(64 * 1024, stream),
            line: String::new(),
        })
    }

    /// The next raw JSON line (without its newline), or `None` at end of stream.
    pub fn next_line(&mut self) -> Result<Option<&str>> {
        self.line.clear();
        let n = self
            .reader
            .read_line(&mut self.line)
            .map_err(|source| Error::Query {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.line.trim_end_matches('\n')))
    }

    /// Whether more data is already buffered (so a printer can delay flushing).
    pub fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    fn decode_err(&self, source: serde_json::Error) -> Error {
        Error::Decode {
            path: self.path.clone(),
            source,
        }
    }
}

/// Iterator over parsed entries of a dump or follow connection, optionally
/// restricted to one source.
#[derive(Debug)]
pub struct LogStream {
    conn: QueryConn,
    filter: Option<String>,
}

impl Iterator for LogStream {
    type Item = Result<LogEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.conn.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let entry = match LogEntry::from_json(line) {
                Ok(e) => e,
                Err(e) => return Some(Err(self.conn.decode_err(e))),
            };
            match &self.filter {
                Some(f) if *f != entry.source => continue,
                _ => return Some(Ok(entry)),
            }
        }
    }
}

/// Where a follow starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowFrom {
    /// Only entries arriving from now on (mode 1).
    Now,
    /// Everything still in the ring, then new entries (mode 2).
    Oldest,
}

/// Everything memlogd holds now (mode 0), optionally only `filter`'s entries.
pub fn dump(query_socket: &Path, filter: Option<&str>) -> Result<Vec<LogEntry>> {
    let conn = QueryConn::connect(query_socket, QueryMode::Dump)?;
    LogStream {
        conn,
        filter: filter.map(str::to_string),
    }
    .collect()
}

/// A never-ending stream of entries (mode 1 or 2), optionally only `filter`'s.
pub fn follow(query_socket: &Path, from: FollowFrom, filter: Option<&str>) -> Result<LogStream> {
    let mode = match from {
        FollowFrom::Now => QueryMode::Follow,
        FollowFrom::Oldest => QueryMode::DumpFollow,
    };
    Ok(LogStream {
        conn: QueryConn::connect(query_socket, mode)?,
        filter: filter.map(str::to_string),
    })
}

/// memlogd's counters (mode 3). Registrations sent before this call are
/// reflected in the answer.
pub fn stats(query_socket: &Path) -> Result<Stats> {
    let mut conn = QueryConn::connect(query_socket, QueryMode::Stats)?;
    let mut lines = Vec::new();
    while let Some(line) = conn.next_line()? {
        match serde_json::from_str::<StatsLine>(line) {
            Ok(l) => lines.push(l),
            Err(e) => return Err(conn.decode_err(e)),
        }
    }
    Ok(Stats::from_lines(lines))
}

/// Names of the streams memlogd is reading now (at least one open fd).
pub fn active_sources(query_socket: &Path) -> Result<Vec<String>> {
    Ok(stats(query_socket)?.active_sources())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bytes_round_trip() {
        for b in 0..=3u8 {
            assert_eq!(QueryMode::from_byte(b).unwrap() as u8, b);
        }
        assert_eq!(QueryMode::from_byte(4), None);
        assert_eq!(QueryMode::from_byte(255), None);
    }
}
