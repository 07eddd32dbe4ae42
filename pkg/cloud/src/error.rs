//! Errors, each naming the file, endpoint or object concerned.

use std::path::PathBuf;

/// What went wrong talking to or trusting the controller.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file's content is not what it must be.
    #[error("{}: {what}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// TLS or key material could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The controller could not be reached or the connection failed
    /// (including a certificate it presented that does not verify).
    #[error("controller {server}: {detail}")]
    Transport {
        /// `host:port`.
        server: String,
        /// The error with its causes.
        detail: String,
    },
    /// The controller answered with an error status.
    #[error("controller answered {status} to {what}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Request, e.g. `POST /register`.
        what: String,
        /// The controller's error message.
        message: String,
    },
    /// The controller's answer is longer than the client reads for that
    /// endpoint; it was refused unread (by its Content-Length) or as soon as
    /// it passed the limit.
    #[error("controller {server}: the answer to {what} is {seen} bytes{}, more than the limit of {limit}; refused", if *.declared { " (Content-Length)" } else { " or more" })]
    TooLarge {
        /// `host:port`.
        server: String,
        /// Request, e.g. `GET config`.
        what: String,
        /// The most bytes read for it.
        limit: usize,
        /// Its Content-Length, or the bytes seen when reading stopped.
        seen: u64,
        /// Whether `seen` is the declared Content-Length.
        declared: bool,
    },
    /// The controller's answer does not decode.
    #[error("controller {server}: the answer to {what} does not decode: {detail}")]
    Decode {
        /// `host:port`.
        server: String,
        /// Request.
        what: String,
        /// The decoder's error.
        detail: String,
    },
    /// A signed object did not verify; nothing of it was used.
    #[error("signed config refused: {0}")]
    Signature(String),
}

impl CloudError {
    /// The HTTP status when the controller answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CloudError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        CloudError::BadFile {
            path: path.into(),
            what: what.into(),
        }
    }
}

/// An error with its whole cause chain on one line (rustls's reason for
/// refusing a certificate sits several levels down in reqwest's errors).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
