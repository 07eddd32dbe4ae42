//! The builder's errors: each names what was being built and the file,
//! package or entry involved, and the fix where there is one.

use std::path::{Path, PathBuf};

/// Result with the builder's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while reading a definition or building an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The YAML does not parse or has an unknown key (the message names the line).
    #[error("{path}: {source}")]
    Parse {
        /// The definition file.
        path: PathBuf,
        /// serde_yaml's error, with line and column.
        source: serde_yaml::Error,
    },
    /// The YAML parses but says something the builder cannot do.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The definition file.
        path: PathBuf,
        /// Where in the document (`services[1].image`).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An external tool (dpkg-query, mksquashfs, sgdisk, mkfs.ext4, strip) failed.
    #[error("{tool} failed ({what}): {message}")]
    Tool {
        /// The program.
        tool: String,
        /// What it was asked to do.
        what: String,
        /// Its exit status and stderr, or the spawn error.
        message: String,
    },
    /// A Debian package is missing or does not hold what the definition needs.
    #[error("Debian package {package}: {message}")]
    Package {
        /// The package name.
        package: String,
        /// What is wrong (and the fix).
        message: String,
    },
    /// A kernel module cannot be resolved from `modules.dep`.
    #[error("kernel module {module}: {message}")]
    Module {
        /// The module name as written.
        module: String,
        /// What is wrong.
        message: String,
    },
    /// An ELF file could not be read, or a shared library it needs is missing.
    #[error("{path}: {message}")]
    Elf {
        /// The binary or library.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Two entries put different things at the same path of the root.
    #[error("{path}: provided by both {first} and {second}")]
    Conflict {
        /// The path in the image.
        path: PathBuf,
        /// The entry that put it there first.
        first: String,
        /// The entry that tried to replace it.
        second: String,
    },
    /// Building or reading an OCI image failed.
    #[error("OCI image {what}: {source}")]
    Oci {
        /// The image definition or layout.
        what: String,
        /// ocibuild's error.
        source: outpost_ocibuild::Error,
    },
    /// A disk image is malformed or lacks a partition.
    #[error("disk image {path}: {message}")]
    Disk {
        /// The disk image.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `OUTPOST_QEMU_ACCEL` holds something other than `kvm`, `tcg` or `auto`.
    #[error("OUTPOST_QEMU_ACCEL={value}: expected kvm, tcg, auto or unset")]
    Accel {
        /// The value found.
        value: String,
    },
}

impl Error {
    /// A closure turning an `io::Error` into [`Error::Io`] for `path`.
    pub fn io<'a>(
        context: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> Error + 'a {
        move |source| Error::Io {
            context,
            path: path.to_owned(),
            source,
        }
    }
}
