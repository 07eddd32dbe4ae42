//! Errors of registry pulls: each names the registry and repository (and
//! the digest where one is involved), never a credential.

use std::path::PathBuf;

use thiserror::Error;

use crate::error::RuntimeError;

/// What went wrong while pulling (or pushing) an image.
#[derive(Debug, Error)]
pub enum PullError {
    /// The reference does not parse.
    #[error("image reference {reference:?}: {problem}")]
    Reference {
        /// The text given.
        reference: String,
        /// What is wrong.
        problem: String,
    },
    /// The HTTP client could not be built (bad CA PEM, TLS set-up).
    #[error("registry client for {registry}: {problem}")]
    Client {
        /// Registry host.
        registry: String,
        /// What is wrong.
        problem: String,
    },
    /// A request failed at the transport level.
    #[error("registry {registry}, repository {repository}: {what}: {source}")]
    Http {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What was being fetched.
        what: String,
        /// Transport error.
        source: reqwest::Error,
    },
    /// The registry refused the credentials (or asked for some and none were given).
    #[error("registry {registry} refused access to repository {repository}: {}", if *with_credentials { "wrong username or password (or no pull permission)" } else { "it requires credentials and none were given" })]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Whether credentials were sent.
        with_credentials: bool,
    },
    /// The registry has no such manifest or blob.
    #[error("registry {registry}, repository {repository}: {object} not found")]
    NotFound {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Tag or digest.
        object: String,
    },
    /// An unexpected HTTP status.
    #[error("registry {registry}, repository {repository}: {what}: HTTP {status}: {body}")]
    Status {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What was being done.
        what: String,
        /// HTTP status code.
        status: u16,
        /// Start of the response body.
        body: String,
    },
    /// Bytes did not hash to the digest that names them; nothing was committed.
    #[error("registry {registry}, repository {repository}: blob {digest} has digest {actual} (corrupted in transit or by the registry); rejected")]
    Digest {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Expected digest.
        digest: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// A manifest, index or config is unusable.
    #[error("registry {registry}, repository {repository}: {problem}")]
    Manifest {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// What is wrong.
        problem: String,
    },
    /// A blob transfer kept failing after resuming.
    #[error("registry {registry}, repository {repository}: blob {digest}: transfer failed after {attempts} attempts at byte {offset}: {last}")]
    Transfer {
        /// Registry host.
        registry: String,
        /// Repository.
        repository: String,
        /// Blob digest.
        digest: String,
        /// Attempts made.
        attempts: u32,
        /// Bytes received when giving up.
        offset: u64,
        /// The last error.
        last: String,
    },
    /// The image would not fit in the disk budget; nothing was written.
    #[error("not pulling {reference}: it needs {need} bytes plus a reserve of {reserve} bytes on {}, which has {available} bytes free (free space or lower the reserve)", path.display())]
    DiskBudget {
        /// The image reference.
        reference: String,
        /// Bytes of blobs still to fetch.
        need: u64,
        /// Reserve kept free.
        reserve: u64,
        /// Free bytes on the filesystem.
        available: u64,
        /// The content store's directory.
        path: PathBuf,
    },
    /// Checking free space failed.
    #[error("checking free space on {}: {source}", path.display())]
    Statvfs {
        /// The directory.
        path: PathBuf,
        /// errno.
        source: nix::Error,
    },
    /// A containerd step failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl crate::image::content::IngestLocked for PullError {
    fn ingest_locked(&self) -> bool {
        matches!(self, PullError::Runtime(e) if e.ingest_locked())
    }
}

impl From<outpost_api::ReferenceError> for PullError {
    fn from(e: outpost_api::ReferenceError) -> Self {
        PullError::Reference {
            reference: e.reference,
            problem: e.problem,
        }
    }
}
