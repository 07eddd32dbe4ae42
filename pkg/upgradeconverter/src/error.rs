//! The one error type of the converter; every variant names the path it was
//! working on.

use std::path::PathBuf;

use thiserror::Error;

/// Why a conversion step failed.
#[derive(Debug, Error)]
pub enum ConvertError {
    /// A file-system call failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("copying", "renaming into place", …).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something is mounted inside a directory that should move; copying it
    /// would copy the mounted file system instead of the directory.
    #[error("{} is a mount point: stop whatever mounted it (an old agent's app?) and run the converter again", path.display())]
    Mounted {
        /// The mount point.
        path: PathBuf,
    },
    /// A file type the copy does not handle (device node, FIFO, socket).
    #[error("{}: only regular files, directories and symlinks can be copied", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
    },
    /// A directory that should be renamed lives on another file system.
    #[error("{} and {} are on different file systems; move it by hand", from.display(), to.display())]
    CrossDevice {
        /// The source.
        from: PathBuf,
        /// The destination.
        to: PathBuf,
    },
    /// Writing `snapshotid.txt` failed.
    #[error("saving the snapshot ID in {}: {source}", path.display())]
    SnapshotId {
        /// The volume directory.
        path: PathBuf,
        /// What the runtime reported.
        source: outpost_runtime::RuntimeError,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] outpost_store::StoreError),
}

impl ConvertError {
    /// A [`ConvertError::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConvertError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result with [`ConvertError`].
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
