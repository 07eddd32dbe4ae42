//! The crate's error type: each variant says what was being done and names
//! the object (file, device, table).

use std::path::PathBuf;

use thiserror::Error;

/// Result with [`ControllerError`].
pub type Result<T, E = ControllerError> = std::result::Result<T, E>;

/// Everything the controller library can fail with.
#[derive(Debug, Error)]
pub enum ControllerError {
    /// A file or directory operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, …).
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state directory already holds a controller.
    #[error("{} already holds a controller state ({file} exists); use --force to replace it (every device must then be onboarded again)", dir.display())]
    AlreadyInitialised {
        /// The state directory.
        dir: PathBuf,
        /// The file that shows it.
        file: &'static str,
    },
    /// The state directory was never initialised.
    #[error("{} is not an initialised controller state ({file} is missing); run `outpost-controller --state {} init --server HOST:PORT` first", dir.display(), dir.display())]
    NotInitialised {
        /// The state directory.
        dir: PathBuf,
        /// The missing file.
        file: &'static str,
    },
    /// Making or reading a certificate or key failed.
    #[error("{what}: {message}")]
    Pki {
        /// Which certificate or key.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// Building the TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// A database operation failed.
    #[error("database {}: {context}: {source}", path.display())]
    Db {
        /// The redb file.
        path: PathBuf,
        /// What was being done.
        context: String,
        /// The redb error.
        source: Box<redb::Error>,
    },
    /// A PostgreSQL operation failed (the database is named without its password).
    #[error("PostgreSQL {database}: {context}: {message}")]
    Postgres {
        /// `database NAME on HOST as USER`.
        database: String,
        /// What was being done.
        context: String,
        /// The driver's or the server's error text.
        message: String,
    },
    /// A stored record no longer decodes.
    #[error("database {}: {what} does not decode: {source}", path.display())]
    Corrupt {
        /// The redb file.
        path: PathBuf,
        /// Which record.
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// An operator's device config document is refused whole.
    #[error("{0}")]
    BadDocument(String),
    /// A command-line or admin request argument is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The admin socket could not be reached or answered badly.
    #[error("admin API {}: {message}", socket.display())]
    Admin {
        /// The socket path.
        socket: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The admin API refused a request.
    #[error("{message}")]
    AdminRefused {
        /// HTTP status of the answer.
        status: u16,
        /// The error text.
        message: String,
        /// Close names when an object was not found.
        suggestions: Vec<String>,
    },
}

impl ControllerError {
    /// An [`ControllerError::Io`] builder for `map_err`.
    pub fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ControllerError::Io {
            context,
            path,
            source,
        }
    }

    /// A [`ControllerError::Pki`] builder for `map_err`.
    pub fn pki<E: std::fmt::Display>(what: impl Into<String>) -> impl FnOnce(E) -> Self {
        let what = what.into();
        move |e| ControllerError::Pki {
            what,
            message: e.to_string(),
        }
    }
}
