//! The crate's errors.

use std::path::{Path, PathBuf};

/// What went wrong with a slot or its GPT.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or device operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done ("writing the backup GPT of").
        context: &'static str,
        /// The disk.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The GPT is missing, damaged beyond repair, or lacks a slot.
    #[error("{path}: {message}")]
    Gpt {
        /// The disk.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No disk holds a GPT with the slot partitions.
    #[error("no disk with a GPT partition named {label} (looked at: {looked})")]
    NoDisk {
        /// The label looked for.
        label: String,
        /// The disks tried.
        looked: String,
    },
}

impl Error {
    /// A closure for `map_err` that wraps an I/O error with what and where.
    pub fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io {
            context,
            path,
            source,
        }
    }

    /// A GPT problem on `path`.
    pub fn gpt(path: &Path, message: String) -> Error {
        Error::Gpt {
            path: path.to_owned(),
            message,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
