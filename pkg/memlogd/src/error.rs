//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in this crate; each variant names the socket,
/// path or stream it was about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stream name memlogd would refuse (empty or too long).
    #[error("invalid memlogd stream name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// `register_fds` was called with no fds or more than one datagram carries.
    #[error("cannot register stream {stream:?}: {count} fds given, 1 to {max} allowed")]
    FdCount {
        /// Stream name.
        stream: String,
        /// Number of fds given.
        count: usize,
        /// The most one datagram may carry.
        max: usize,
    },
    /// Sending the registration datagram failed.
    #[error(
        "registering stream {stream:?} with memlogd at {path}: {source} (is memlogd running?)"
    )]
    Register {
        /// Write-side socket path.
        path: PathBuf,
        /// Stream name.
        stream: String,
        /// Underlying error.
        source: io::Error,
    },
    /// Connecting to the query socket failed.
    #[error("connecting to memlogd query socket {path}: {source} (is memlogd running?)")]
    Connect {
        /// Query socket path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Reading from or writing to an established query connection failed.
    #[error("talking to memlogd query socket {path}: {source}")]
    Query {
        /// Query socket path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// memlogd sent a line that does not parse.
    #[error("memlogd at {path} sent an unparsable line: {source}")]
    Decode {
        /// Query socket path.
        path: PathBuf,
        /// Parse error.
        source: serde_json::Error,
    },
    /// `mkfifo` failed for another reason than "already exists as a FIFO".
    #[error("creating log FIFO {path}: {source}")]
    CreateFifo {
        /// FIFO path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The FIFO path is taken by something that is not a FIFO.
    #[error("{path} exists and is not a FIFO; remove it so the task's log FIFO can be created")]
    NotAFifo {
        /// The offending path.
        path: PathBuf,
    },
    /// Opening the FIFO failed.
    #[error("opening log FIFO {path} for stream {stream:?}: {source}")]
    OpenFifo {
        /// FIFO path.
        path: PathBuf,
        /// Stream name.
        stream: String,
        /// Underlying error.
        source: io::Error,
    },
    /// Unlinking the FIFO failed (other than "not found").
    #[error("removing log FIFO {path}: {source}")]
    RemoveFifo {
        /// FIFO path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Listing the FIFO directory failed.
    #[error("listing log FIFO directory {dir}: {source}")]
    ListFifos {
        /// The FIFO directory.
        dir: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The daemon could not bind one of its sockets.
    #[error("binding memlogd socket {path}: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// A live memlogd already serves this socket path.
    #[error("{path}: another memlogd is already listening there; stop it or choose another path")]
    AlreadyRunning {
        /// Socket path.
        path: PathBuf,
    },
    /// An fd given with `-fd-log`/`-fd-query` is unusable.
    #[error("inheriting socket fd {fd} given with -{flag}: {reason}")]
    InheritFd {
        /// The flag name (`fd-log` or `fd-query`).
        flag: &'static str,
        /// The fd number.
        fd: i32,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid memlogd configuration: {0}")]
    Config(String),
    /// Another I/O failure of the daemon.
    #[error("memlogd: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Underlying error.
        source: io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
