//! The runtime crate's error type: every variant names the object it was
//! working on (app, task, digest, path, socket).

use std::path::PathBuf;

use thiserror::Error;

/// Result alias for this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What went wrong while driving containerd.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// Could not reach a containerd socket.
    #[error("cannot connect to containerd at {socket}: {source}")]
    Connect {
        /// Socket path.
        socket: PathBuf,
        /// Transport error.
        source: tonic::transport::Error,
    },
    /// A containerd API call failed.
    #[error("containerd {op} for {object}: {status}")]
    Api {
        /// Which call (`tasks.Create`, …).
        op: &'static str,
        /// The object it was about.
        object: String,
        /// gRPC status from containerd.
        status: Box<tonic::Status>,
    },
    /// A file-system step failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done (`creating volume dir`, …).
        context: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The image content is not what its digest or media type says.
    #[error("image {reference}: {problem}")]
    Image {
        /// Image reference or digest.
        reference: String,
        /// What is wrong.
        problem: String,
    },
    /// No image with that reference in the content store.
    #[error("image {0} is not in the user containerd (import or pull it first)")]
    ImageNotFound(String),
    /// Building the OCI runtime spec failed.
    #[error("runtime spec for {task}: {problem}")]
    Spec {
        /// Task ID.
        task: String,
        /// What is wrong.
        problem: String,
    },
    /// The task did not reach the wanted state in time.
    #[error("task {task}: {what} did not finish within {secs} s")]
    Timeout {
        /// Task ID.
        task: String,
        /// What was awaited.
        what: &'static str,
        /// How long.
        secs: u64,
    },
    /// The user containerd instance could not be started.
    #[error("user containerd: {0}")]
    Instance(String),
    /// Wiring an app to its networks failed.
    #[error(transparent)]
    Network(Box<crate::net::NetError>),
    /// Decoding something containerd returned failed.
    #[error("decoding {what} for {object}: {problem}")]
    Decode {
        /// Which payload.
        what: &'static str,
        /// The object it was about.
        object: String,
        /// Decoder message.
        problem: String,
    },
}

impl RuntimeError {
    /// A containerd call failure.
    pub fn api(op: &'static str, object: impl Into<String>, status: tonic::Status) -> Self {
        RuntimeError::Api {
            op,
            object: object.into(),
            status: Box::new(status),
        }
    }

    /// A file-system failure at `path`.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// True when containerd said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuntimeError::Api { status, .. } if status.code() == tonic::Code::NotFound)
            || matches!(self, RuntimeError::ImageNotFound(_))
    }

    /// True when containerd said the object already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, RuntimeError::Api { status, .. } if status.code() == tonic::Code::AlreadyExists)
    }
}
