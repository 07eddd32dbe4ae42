//! The crate's single error type.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading a definition, building an image
/// or reading a layout. Each variant names the file, digest or field involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on `path` failed; `context` says what was being done.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "creating blob", …).
        context: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// An `image.yaml` could not be parsed (syntax error, unknown field,
    /// wrong type). The message from the YAML parser names the field and line.
    #[error("image definition {}: {source}", path.display())]
    DefinitionParse {
        /// The definition file.
        path: PathBuf,
        /// The parser's error, including line and column.
        source: serde_yaml::Error,
    },

    /// An `image.yaml` parsed but one of its values is not acceptable.
    #[error("image definition {}: {field}: {problem}", path.display())]
    DefinitionInvalid {
        /// The definition file (or `<memory>` when parsed from a string).
        path: PathBuf,
        /// Dotted path of the offending field, e.g. `layers[0].files[2].to`.
        field: String,
        /// What is wrong and, where possible, how to fix it.
        problem: String,
    },

    /// A host file named by `from:` could not be used.
    #[error("layer {layer}: source file {}: {problem}", path.display())]
    SourceFile {
        /// Index of the layer in the definition.
        layer: usize,
        /// The resolved host path.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// The output directory exists and does not look like a layout this crate
    /// may replace.
    #[error("output directory {}: {problem}", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// Why it cannot be used.
        problem: String,
    },

    /// A JSON document of a layout (`index.json`, `oci-layout`, a manifest or
    /// config blob) could not be parsed or serialised.
    #[error("{what} {}: {source}", path.display())]
    Json {
        /// Which document ("index.json", "manifest", "image config", …).
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },

    /// A layout is structurally wrong (missing file, wrong media type,
    /// unsupported layout version, no matching manifest, …).
    #[error("OCI layout {}: {problem}", path.display())]
    Layout {
        /// The layout directory (or archive).
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// A blob's content does not match the digest it is stored under or the
    /// descriptor that references it.
    #[error("blob {digest} in {}: {problem}", path.display())]
    Blob {
        /// The digest the blob was looked up by.
        digest: String,
        /// The blob file.
        path: PathBuf,
        /// The mismatch found.
        problem: String,
    },

    /// A digest string is not a valid `algorithm:encoded` OCI digest, or uses
    /// an algorithm this crate cannot verify.
    #[error("digest {digest:?}: {problem}")]
    Digest {
        /// The offending digest string.
        digest: String,
        /// What is wrong.
        problem: String,
    },

    /// An `oci-spec` builder rejected a value (should not happen for
    /// definitions that passed validation).
    #[error("building {what}: {source}")]
    Spec {
        /// Which document was being built.
        what: &'static str,
        /// The underlying error.
        source: oci_spec::OciSpecError,
    },
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            context,
            path,
            source,
        }
    }

    /// Shorthand for [`Error::Layout`].
    pub(crate) fn layout(path: impl Into<PathBuf>, problem: impl Into<String>) -> Error {
        Error::Layout {
            path: path.into(),
            problem: problem.into(),
        }
    }
}
