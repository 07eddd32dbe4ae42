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

/// Whether retrying a failed pull can help without anyone changing anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The network, the registry or the device may get better by itself
    /// (connection or timeout errors, HTTP 5xx/408/429, a transfer that
    /// kept failing, containerd unavailable, not enough free space yet).
    Transient,
    /// Only a change of config or registry content fixes it (no such image,
    /// access refused, bad reference or CA, a digest mismatch, an unusable
    /// manifest): an operator must act.
    Permanent,
}

impl PullError {
    /// Classifies the error for retry and severity decisions.
    ///
    /// A digest mismatch counts as permanent: the registry served bytes that
    /// do not match what it names, which retrying from the same registry
    /// rarely repairs. The disk budget counts as transient: space comes back
    /// when apps or unused images go.
    pub fn class(&self) -> ErrorClass {
        use ErrorClass::{Permanent, Transient};
        match self {
            PullError::Reference { .. }
            | PullError::Client { .. }
            | PullError::Unauthorized { .. }
            | PullError::NotFound { .. }
            | PullError::Digest { .. }
            | PullError::Manifest { .. } => Permanent,
            PullError::Http { source, .. } if source.is_builder() => Permanent,
            PullError::Status { status, .. } => status_class(*status),
            PullError::Http { .. }
            | PullError::Transfer { .. }
            | PullError::DiskBudget { .. }
            | PullError::Statvfs { .. }
            | PullError::Runtime(_) => Transient,
        }
    }
}

/// HTTP statuses: 4xx are the request's fault (permanent) except 408 and
/// 429; 5xx and anything unexpected may pass.
fn status_class(status: u16) -> ErrorClass {
    match status {
        408 | 429 => ErrorClass::Transient,
        400..=499 => ErrorClass::Permanent,
        _ => ErrorClass::Transient,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> PullError {
        PullError::Status {
            registry: "r".into(),
            repository: "x".into(),
            what: "manifest".into(),
            status,
            body: String::new(),
        }
    }

    #[test]
    fn classification() {
        use ErrorClass::{Permanent, Transient};
        let (registry, repository) = (String::from("r"), String::from("x"));
        let cases = [
            (status(500), Transient),
            (status(502), Transient),
            (status(503), Transient),
            (status(408), Transient),
            (status(429), Transient),
            (status(400), Permanent),
            (status(403), Permanent),
            (status(404), Permanent),
            (
                PullError::NotFound {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    object: "1.0".into(),
                },
                Permanent,
            ),
            (
                PullError::Unauthorized {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    with_credentials: true,
                },
                Permanent,
            ),
            (
                PullError::Digest {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    digest: "sha256:a".into(),
                    actual: "sha256:b".into(),
                },
                Permanent,
            ),
            (
                PullError::Manifest {
                    registry: registry.clone(),
                    repository: repository.clone(),
                    problem: "no linux/amd64 entry".into(),
                },
                Permanent,
            ),
            (
                PullError::Reference {
                    reference: "::".into(),
                    problem: "empty".into(),
                },
                Permanent,
            ),
            (
                PullError::Transfer {
                    registry,
                    repository,
                    digest: "sha256:a".into(),
                    attempts: 5,
                    offset: 10,
                    last: "reset".into(),
                },
                Transient,
            ),
            (
                PullError::DiskBudget {
                    reference: "r/x:1".into(),
                    need: 10,
                    reserve: 1,
                    available: 2,
                    path: "/persist".into(),
                },
                Transient,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.class(), want, "{e}");
        }
    }

    #[tokio::test]
    async fn transport_errors_are_transient() {
        // Nothing listens on port 1 of loopback: connection refused.
        let source = reqwest::Client::new()
            .get("http://127.0.0.1:1/v2/")
            .send()
            .await
            .unwrap_err();
        let e = PullError::Http {
            registry: "127.0.0.1:1".into(),
            repository: "x".into(),
            what: "manifest".into(),
            source,
        };
        assert_eq!(e.class(), ErrorClass::Transient);
    }
}
