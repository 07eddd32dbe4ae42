//! Daemon configuration (the `memlogd` flags).

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::register::MAX_NAME_LEN;

/// Everything `memlogd` can be told on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Write-side datagram socket path (`-socket-log`).
    pub socket_log: PathBuf,
    /// Query stream socket path (`-socket-query`).
    pub socket_query: PathBuf,
    /// Already-bound `SOCK_DGRAM` socket to use instead of `socket_log` (`-fd-log`).
    pub fd_log: Option<RawFd>,
    /// Already-listening `SOCK_STREAM` socket to use instead of `socket_query` (`-fd-query`).
    pub fd_query: Option<RawFd>,
    /// Line bound of the ring (`-max-lines`, linuxkit default 5000).
    pub max_lines: usize,
    /// Longest line kept, in bytes; the rest is dropped (`-max-line-len`, default 1024).
    pub max_line_len: usize,
    /// Byte bound of the ring, counted as encoded JSON (`-max-bytes`, default 8 MiB).
    pub max_bytes: usize,
    /// Bytes dump snapshots may keep alive beyond the ring (`-max-dump-bytes`);
    /// `None`: the same as `max_bytes`; `Some(0)`: dumps read the live ring
    /// and lose what it evicts before they send it.
    pub max_dump_bytes: Option<usize>,
    /// Query connections served at once; more are closed (`-max-readers`).
    pub max_readers: usize,
    /// Streams read at once; further fds are closed (`-max-streams`).
    pub max_streams: usize,
    /// How often FIFO streams are checked for having been unlinked (`-fifo-check-interval`).
    pub fifo_check_interval: Duration,
    /// How long a query connection may take to send its mode byte.
    pub mode_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket_log: crate::DEFAULT_LOG_SOCKET.into(),
            socket_query: crate::DEFAULT_QUERY_SOCKET.into(),
            fd_log: None,
            fd_query: None,
            max_lines: 5000,
            max_line_len: 1024,
            max_bytes: 8 << 20,
            max_dump_bytes: None,
            max_readers: 128,
            max_streams: 4096,
            fifo_check_interval: Duration::from_secs(2),
            mode_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// A default configuration with both sockets in `dir` (handy for tests).
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Config {
            socket_log: dir.join("memlogd.sock"),
            socket_query: dir.join("memlogdq.sock"),
            ..Config::default()
        }
    }

    /// Bytes dump snapshots may keep alive beyond the ring.
    pub fn dump_budget(&self) -> usize {
        self.max_dump_bytes.unwrap_or(self.max_bytes)
    }

    /// Refuses bounds that make no sense.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("max-lines", self.max_lines),
            ("max-line-len", self.max_line_len),
            ("max-bytes", self.max_bytes),
            ("max-readers", self.max_readers),
            ("max-streams", self.max_streams),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(Error::Config(format!("-{flag} must be at least 1")));
            }
        }
        // Room for at least one full-length line from a maximal name. (A line
        // that grows past the bound through escaping is still delivered to live
        // followers but not kept.)
        let biggest = self.max_line_len.saturating_add(MAX_NAME_LEN + 100);
        if self.max_bytes < biggest {
            return Err(Error::Config(format!(
                "-max-bytes {} is below the size of one maximal entry ({biggest} bytes for \
                 -max-line-len {}); raise -max-bytes or lower -max-line-len",
                self.max_bytes, self.max_line_len
            )));
        }
        if self.fifo_check_interval.is_zero() || self.mode_timeout.is_zero() {
            return Err(Error::Config("intervals must be positive".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_linuxkit_like() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!((c.max_lines, c.max_line_len), (5000, 1024));
        assert_eq!(c.dump_budget(), c.max_bytes);
    }

    #[test]
    fn rejects_zero_and_tiny_byte_bound() {
        let c = Config {
            max_lines: 0,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("-max-lines"));
        let c = Config {
            max_bytes: 1000,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("-max-bytes"));
    }
}
