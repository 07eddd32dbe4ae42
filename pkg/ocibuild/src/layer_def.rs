//! The definition of one layer (`layers[i]` in `image.yaml`) and the
//! `mode:` type its entries share. A leaf: the image definition (`def`) and
//! the layer planner (`layer`) both depend on it.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Largest permission value accepted in `mode:` (all of rwx for u/g/o plus
/// setuid, setgid and sticky).
const MAX_MODE: u32 = 0o7777;

/// The content of one layer. All lists are optional; at least one entry
/// must be present in the layer as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerDef {
    /// Host files copied into the layer.
    #[serde(default)]
    pub files: Vec<FileDef>,
    /// Symbolic links.
    #[serde(default)]
    pub links: Vec<LinkDef>,
    /// Busybox applet names; each becomes `/bin/<applet> -> busybox`.
    #[serde(default)]
    pub busybox_applets: Vec<String>,
    /// Empty directories (mode 0755; `/tmp` and `/var/tmp` get 1777).
    #[serde(default)]
    pub dirs: Vec<String>,
    /// Files whose content is given inline.
    #[serde(default)]
    pub write: Vec<WriteDef>,
    /// Deterministic pseudo-random files, for large test images.
    #[serde(default)]
    pub random: Vec<RandomDef>,
}

/// A host file copied into a layer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDef {
    /// Host path; relative paths are resolved against the directory that
    /// holds `image.yaml`. Symlinks are followed; the target must be a
    /// regular file.
    pub from: PathBuf,
    /// Absolute path inside the image.
    pub to: String,
    /// Permission bits; when omitted 0755 if the host file is executable by
    /// its owner, else 0644 (the host's exact bits would make digests depend
    /// on the umask of whoever checked the tree out).
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A symbolic link.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDef {
    /// Absolute path of the link inside the image.
    pub path: String,
    /// Link target, stored verbatim (relative or absolute).
    pub target: String,
}

/// A file with inline content.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteDef {
    /// Absolute path inside the image.
    pub path: String,
    /// Content, written byte for byte (UTF-8).
    pub content: String,
    /// Permission bits; 0644 when omitted.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// A file filled with deterministic pseudo-random bytes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomDef {
    /// Absolute path inside the image.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Seed of the generator; same seed and size give the same bytes.
    #[serde(default)]
    pub seed: u64,
    /// Permission bits; 0644 when omitted.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// Unix permission bits (at most `0o7777`).
///
/// In YAML write `0o755` (an integer in octal) or `"0755"` / `0755` (a string
/// read as octal). A bare `755` is the *decimal* integer 755; avoid it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl Visitor<'_> for ModeVisitor {
            type Value = Mode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file mode such as 0o755 or \"0755\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Mode, E> {
                match u32::try_from(v) {
                    Ok(m) if m <= MAX_MODE => Ok(Mode(m)),
                    _ => Err(E::custom(format!(
                        "mode {v:#o} is larger than 0o7777 (write modes in octal: 0o755)"
                    ))),
                }
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Mode, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("mode {v} is negative"))),
                }
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Mode, E> {
                let digits = v.strip_prefix("0o").unwrap_or(v);
                let m = u32::from_str_radix(digits, 8)
                    .map_err(|_| E::custom(format!("mode {v:?} is not an octal number")))?;
                self.visit_u64(u64::from(m))
            }
        }

        deserializer.deserialize_any(ModeVisitor)
    }
}
