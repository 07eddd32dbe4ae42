//! The `image.yaml` definition: types, parsing and validation.
//!
//! The format is documented in the crate root. Every struct rejects unknown
//! fields so that a typo (`entrypiont:`) is an error naming the file, not a
//! silently different image.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::layer;
use crate::layer_def::LayerDef;

/// A parsed and validated `image.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDef {
    /// Repository part of the reference, e.g. `hello` or `outpost/hello`.
    pub name: String,
    /// Tag part of the reference; `latest` when omitted.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Filesystem layers, bottom first. Each becomes one tar+gzip blob.
    pub layers: Vec<LayerDef>,
    /// Runtime defaults written to the image config.
    #[serde(default)]
    pub config: ConfigDef,
}

/// Runtime defaults for containers made from the image (the `config`
/// object of the OCI image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDef {
    /// Executable and leading arguments.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments (or the command when there is no entrypoint).
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` environment entries.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory of the process.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default)]
    pub user: Option<String>,
    /// Image labels (e.g. `org.lfedge.eve.vnc_password`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Signal that asks the process to stop, e.g. `SIGTERM`.
    #[serde(default)]
    pub stop_signal: Option<String>,
}

fn default_tag() -> String {
    "latest".to_owned()
}

impl ImageDef {
    /// Reads, parses and validates the definition at `path`.
    ///
    /// Errors name `path`; unknown fields, bad modes, relative image paths and
    /// conflicting entries are all rejected here, before any build starts.
    pub fn load(path: impl AsRef<Path>) -> Result<ImageDef> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        ImageDef::from_yaml(&text, path)
    }

    /// Parses and validates a definition held in memory; `origin` is only used
    /// in error messages.
    pub fn from_yaml(text: &str, origin: impl AsRef<Path>) -> Result<ImageDef> {
        let origin = origin.as_ref();
        let def: ImageDef =
            serde_yaml::from_str(text).map_err(|source| Error::DefinitionParse {
                path: origin.to_owned(),
                source,
            })?;
        def.validate(origin)?;
        Ok(def)
    }

    /// The reference recorded in the layout: `<name>:<tag>`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// Checks everything that can be checked without touching host files.
    /// `origin` is used in error messages only.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let invalid = |field: String, problem: String| Error::DefinitionInvalid {
            path: origin.to_owned(),
            field,
            problem,
        };
        if let Err(problem) = check_name(&self.name) {
            return Err(invalid("name".into(), problem));
        }
        if let Err(problem) = check_tag(&self.tag) {
            return Err(invalid("tag".into(), problem));
        }
        if self.layers.is_empty() {
            return Err(invalid(
                "layers".into(),
                "at least one layer is required".into(),
            ));
        }
        for (i, l) in self.layers.iter().enumerate() {
            layer::plan(l, i).map_err(|(field, problem)| invalid(field, problem))?;
        }
        self.config
            .validate()
            .map_err(|(field, problem)| invalid(format!("config.{field}"), problem))
    }
}

/// An image of about `mib` MiB: busybox (`sh`, `sleep`) plus four layers of
/// deterministic random data (`/data/r0`…`r3`), running `cmd`. The large
/// image that pull benchmarks and tests move through a registry.
pub fn big_image(mib: u64, cmd: &[&str], origin: impl AsRef<Path>) -> Result<ImageDef> {
    let per = mib * 1024 * 1024 / 4;
    let mut yaml = String::from(
        "name: big\nlayers:\n  - files:\n      - { from: /bin/busybox, to: /bin/busybox, mode: 0o755 }\n    busybox_applets: [sh, sleep]\n",
    );
    for i in 0..4 {
        yaml += &format!(
            "  - random:\n      - {{ path: /data/r{i}, size: {per}, seed: {} }}\n",
            i + 1
        );
    }
    let cmd: Vec<String> = cmd.iter().map(|c| format!("{c:?}")).collect();
    yaml += &format!("config:\n  cmd: [{}]\n", cmd.join(", "));
    ImageDef::from_yaml(&yaml, origin)
}

impl ConfigDef {
    fn validate(&self) -> std::result::Result<(), (String, String)> {
        for (i, e) in self.env.iter().enumerate() {
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => {
                    return Err((
                        format!("env[{i}]"),
                        format!("{e:?} is not of the form KEY=value"),
                    ))
                }
            }
        }
        if let Some(w) = &self.working_dir {
            if !w.starts_with('/') {
                return Err((
                    "working_dir".into(),
                    format!("{w:?} must be an absolute path"),
                ));
            }
        }
        if let Some(s) = &self.stop_signal {
            let ok = s.starts_with("SIG") && s.len() > 3 || s.parse::<u32>().is_ok();
            if !ok {
                return Err((
                    "stop_signal".into(),
                    format!("{s:?} is not a signal name like SIGTERM or a number"),
                ));
            }
        }
        if matches!(&self.entrypoint, Some(v) if v.is_empty()) {
            return Err((
                "entrypoint".into(),
                "must not be an empty list (omit it instead)".into(),
            ));
        }
        Ok(())
    }
}

/// Repository names: lowercase components of `[a-z0-9]` joined by single
/// `.`, `_`, `-` (or `__`), separated by `/`; a leading registry host may
/// carry a `:port`.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    for (i, comp) in name.split('/').enumerate() {
        let comp = if i == 0 && name.contains('/') {
            // registry host: allow host:port
            comp.split_once(':').map_or(comp, |(h, _)| h)
        } else {
            comp
        };
        let bytes = comp.as_bytes();
        let valid_chars = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b));
        let edges = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
        if !valid_chars || !edges {
            return Err(format!(
                "{name:?} is not a valid image name (lowercase letters, digits and . _ - \
                 between them, components separated by /)"
            ));
        }
    }
    Ok(())
}

/// Tags: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?} is not a valid tag (letters, digits, _ . -, at most 128, not starting with . or -)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer_def::Mode;

    const MINIMAL: &str = "name: t\nlayers:\n  - dirs: [/tmp]\n";

    fn err_text(yaml: &str) -> String {
        ImageDef::from_yaml(yaml, "/defs/x/image.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_definition_gets_defaults() {
        let d = ImageDef::from_yaml(MINIMAL, "m.yaml").unwrap();
        assert_eq!(d.tag, "latest");
        assert_eq!(d.reference(), "t:latest");
        assert_eq!(d.config, ConfigDef::default());
    }

    #[test]
    fn full_example_parses() {
        let yaml = r#"
name: hello
tag: v1
layers:
  - files:
      - { from: /bin/busybox, to: /bin/busybox, mode: 0o755 }
    links:
      - { path: /bin/sh, target: busybox }
    busybox_applets: [sh, sleep]
    dirs: [/tmp, /etc]
    write:
      - { path: /etc/passwd, content: "root:x:0:0:root:/root:/bin/sh\n", mode: "0644" }
    random: [{ path: /blob, size: 1048576, seed: 1 }]
config:
  entrypoint: [/bin/sh, -c]
  cmd: ["echo hi"]
  env: [PATH=/bin]
  working_dir: /
  user: "0:0"
  labels: { org.lfedge.eve.vnc_password: "x" }
  stop_signal: SIGTERM
"#;
        let d = ImageDef::from_yaml(yaml, "h.yaml").unwrap();
        let l = &d.layers[0];
        assert_eq!(l.files[0].mode, Some(Mode(0o755)));
        assert_eq!(l.write[0].mode, Some(Mode(0o644)));
        assert_eq!(l.random[0].size, 1 << 20);
        assert_eq!(d.config.labels["org.lfedge.eve.vnc_password"], "x");
        assert_eq!(d.reference(), "hello:v1");
    }

    #[test]
    fn unknown_field_error_names_file_and_field() {
        for yaml in [
            "name: t\nlayers: [{dirs: [/tmp]}]\nentrypiont: [x]\n",
            "name: t\nlayers: [{dirs: [/tmp], fiels: []}]\n",
            "name: t\nlayers: [{files: [{from: a, to: /a, mod: 0o644}]}]\n",
            "name: t\nlayers: [{dirs: [/tmp]}]\nconfig: {cmdd: [x]}\n",
        ] {
            let e = err_text(yaml);
            assert!(e.contains("/defs/x/image.yaml"), "{e}");
            assert!(e.contains("unknown field"), "{e}");
        }
    }

    #[test]
    fn load_error_names_the_file() {
        let e = ImageDef::load("/nonexistent/image.yaml").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/image.yaml"), "{e}");
    }

    #[test]
    fn invalid_values_are_rejected_with_field_names() {
        let cases = [
            ("name: Hello\nlayers: [{dirs: [/tmp]}]\n", "name"),
            ("name: t\ntag: -x\nlayers: [{dirs: [/tmp]}]\n", "tag"),
            ("name: t\nlayers: []\n", "layers"),
            ("name: t\nlayers: [{}]\n", "layers[0]"),
            ("name: t\nlayers: [{dirs: [tmp]}]\n", "layers[0].dirs[0]"),
            (
                "name: t\nlayers: [{dirs: [/a/../b]}]\n",
                "layers[0].dirs[0]",
            ),
            (
                "name: t\nlayers: [{write: [{path: /a, content: x, mode: 0o17777}]}]\n",
                "larger than 0o7777",
            ),
            (
                "name: t\nlayers: [{write: [{path: /a, content: x, mode: \"9\"}]}]\n",
                "not an octal",
            ),
            (
                "name: t\nlayers: [{busybox_applets: [a/b]}]\n",
                "layers[0].busybox_applets[0]",
            ),
            (
                "name: t\nlayers: [{dirs: [/tmp]}]\nconfig: {env: [NOEQUALS]}\n",
                "config.env[0]",
            ),
            (
                "name: t\nlayers: [{dirs: [/tmp]}]\nconfig: {working_dir: rel}\n",
                "config.working_dir",
            ),
            (
                "name: t\nlayers: [{dirs: [/tmp]}]\nconfig: {stop_signal: TERM}\n",
                "config.stop_signal",
            ),
        ];
        for (yaml, needle) in cases {
            let e = err_text(yaml);
            assert!(e.contains(needle), "{yaml}: {e}");
            assert!(e.contains("/defs/x/image.yaml"), "{e}");
        }
    }

    #[test]
    fn conflicting_entries_are_rejected() {
        let yaml = "name: t\nlayers:\n  - links: [{path: /bin/sh, target: busybox}]\n    \
                    write: [{path: /bin/sh, content: x}]\n";
        let e = err_text(yaml);
        assert!(e.contains("/bin/sh"), "{e}");
        // A file below a symlink cannot be represented in one layer.
        let yaml = "name: t\nlayers:\n  - links: [{path: /etc, target: /x}]\n    \
                    write: [{path: /etc/passwd, content: x}]\n";
        let e = err_text(yaml);
        assert!(e.contains("/etc"), "{e}");
    }

    #[test]
    fn identical_duplicates_are_merged() {
        // The documented example declares /bin/sh both as a link and an applet.
        let yaml = "name: t\nlayers:\n  - links: [{path: /bin/sh, target: busybox}]\n    \
                    busybox_applets: [sh]\n    dirs: [/bin]\n";
        ImageDef::from_yaml(yaml, "m.yaml").unwrap();
    }

    #[test]
    fn registry_style_names_are_accepted() {
        for name in ["a", "outpost/hello", "localhost:5000/x/y", "a.b-c_d"] {
            check_name(name).unwrap();
        }
        for name in ["", "A", "-a", "a/", "a//b", "a b"] {
            assert!(check_name(name).is_err(), "{name}");
        }
    }
}
