//! The image definition: the subset of linuxkit's YAML that Outpost uses,
//! plus `kernel.modules`. Unknown keys are errors that name the line.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::source::Source;

/// A whole `outpost.yml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The kernel, its command line and the modules the image carries.
    pub kernel: Kernel,
    /// What goes into the root filesystem, in order (later entries may not
    /// replace earlier ones, only add).
    #[serde(default)]
    pub init: Vec<String>,
    /// Containers run once at boot, in order, with runc, before containerd starts.
    #[serde(default)]
    pub onboot: Vec<Container>,
    /// Long-running containers started in the system containerd (`services.linuxkit`).
    #[serde(default)]
    pub services: Vec<Container>,
    /// Single files, directories and links added last.
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

/// The `kernel` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// Where the kernel comes from: `deb:<package>` (linuxkit: an image reference).
    pub image: String,
    /// The kernel command line.
    #[serde(default)]
    pub cmdline: String,
    /// Modules to load at boot, with their dependencies from `modules.dep`
    /// (an Outpost extension: linuxkit ships every module of its kernel image).
    #[serde(default)]
    pub modules: Vec<String>,
}

/// An `onboot` or `services` entry: a container built from an OCI image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Container ID, and the name its logs carry in memlogd.
    pub name: String,
    /// `oci:<dir holding image.yaml>`.
    pub image: String,
    /// Replaces the image's entrypoint + cmd.
    pub command: Option<Vec<String>>,
    /// Added to the image's environment (`K=V`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory (default: the image's, else `/`).
    pub cwd: Option<String>,
    /// Capabilities (`CAP_NET_ADMIN` or `NET_ADMIN`; `all` for every one).
    /// Default: runc's (AUDIT_WRITE, KILL, NET_BIND_SERVICE).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Bind mounts `host:container[:opt,opt]` (default options `rw,rbind,rprivate`).
    #[serde(default)]
    pub binds: Vec<String>,
    /// `host` shares the device's network namespace; default: a new one.
    pub net: Option<String>,
    /// `host` shares the device's PID namespace; default: a new one.
    pub pid: Option<String>,
    /// Read-only root filesystem (default true, as the squashfs is read-only anyway).
    pub readonly: Option<bool>,
}

/// A `files` entry: exactly one of `contents`, `source`, `symlink`, `directory`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path in the root (leading `/` optional, as in linuxkit).
    pub path: String,
    /// Inline content.
    pub contents: Option<String>,
    /// A file in the repository, relative to the YAML's directory.
    pub source: Option<String>,
    /// Make a symbolic link with this target.
    pub symlink: Option<String>,
    /// Make an (empty) directory.
    #[serde(default)]
    pub directory: bool,
    /// Octal mode as a string (`"0600"`); default 0644 (0755 for directories).
    pub mode: Option<String>,
}

/// What `net:` / `pid:` may say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// A namespace of its own.
    New,
    /// The device's namespace.
    Host,
}

/// A definition with its references resolved against the YAML's directory.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory relative references resolve against.
    pub base: PathBuf,
    /// The parsed document.
    pub def: Definition,
    /// `kernel.image`, parsed.
    pub kernel: Source,
    /// `init`, parsed, in order.
    pub init: Vec<Source>,
}

impl Definition {
    /// Parses and validates `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Loaded> {
        let path = path.as_ref().to_owned();
        let text = std::fs::read_to_string(&path).map_err(Error::io("reading", &path))?;
        let def: Definition = serde_yaml::from_str(&text).map_err(|source| Error::Parse {
            path: path.clone(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        def.validate(&path, &base)
    }

    /// Checks everything that can be checked without building; resolves references.
    pub fn validate(self, path: &Path, base: &Path) -> Result<Loaded> {
        let bad = |field: String, message: String| Error::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        let kernel =
            Source::parse(&self.kernel.image, base).map_err(|m| bad("kernel.image".into(), m))?;
        if !matches!(kernel, Source::Deb { path: None, .. }) {
            return Err(bad(
                "kernel.image".into(),
                "must be `deb:<package>` (a Debian kernel package such as linux-image-amd64)"
                    .into(),
            ));
        }
        for (i, m) in self.kernel.modules.iter().enumerate() {
            if m.is_empty()
                || !m
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(bad(
                    format!("kernel.modules[{i}]"),
                    format!("{m:?} is not a module name"),
                ));
            }
        }
        let mut init = Vec::new();
        for (i, r) in self.init.iter().enumerate() {
            init.push(Source::parse(r, base).map_err(|m| bad(format!("init[{i}]"), m))?);
        }
        let mut names = BTreeSet::new();
        for (section, list) in [("onboot", &self.onboot), ("services", &self.services)] {
            for (i, c) in list.iter().enumerate() {
                let f = |k: &str| format!("{section}[{i}].{k}");
                if c.name.is_empty()
                    || c.name.starts_with(['.', '-'])
                    || !c.name.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch)
                    })
                {
                    return Err(bad(
                        f("name"),
                        format!("{:?}: use [a-z0-9._-], not starting with . or -", c.name),
                    ));
                }
                if !names.insert((section, c.name.clone())) {
                    return Err(bad(
                        f("name"),
                        format!("{:?} is used twice in {section}", c.name),
                    ));
                }
                match Source::parse(&c.image, base).map_err(|m| bad(f("image"), m))? {
                    Source::Oci { .. } => {}
                    _ => {
                        return Err(bad(
                            f("image"),
                            "must be `oci:<dir with image.yaml>`".into(),
                        ))
                    }
                }
                c.net_share().map_err(|m| bad(f("net"), m))?;
                c.pid_share().map_err(|m| bad(f("pid"), m))?;
                for (j, b) in c.binds.iter().enumerate() {
                    parse_bind(b).map_err(|m| bad(format!("{section}[{i}].binds[{j}]"), m))?;
                }
                for (j, e) in c.env.iter().enumerate() {
                    if !e.contains('=') {
                        return Err(bad(
                            format!("{section}[{i}].env[{j}]"),
                            format!("{e:?} is not K=V"),
                        ));
                    }
                }
                if c.command.as_ref().is_some_and(|c| c.is_empty()) {
                    return Err(bad(
                        f("command"),
                        "is empty; leave it out to use the image's".into(),
                    ));
                }
            }
        }
        for (i, fe) in self.files.iter().enumerate() {
            let f = |k: &str| format!("files[{i}].{k}");
            image_path(&fe.path).map_err(|m| bad(f("path"), m))?;
            let kinds = [
                fe.contents.is_some(),
                fe.source.is_some(),
                fe.symlink.is_some(),
                fe.directory,
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(bad(
                    format!("files[{i}]"),
                    "needs exactly one of contents, source, symlink, directory".into(),
                ));
            }
            if let Some(m) = &fe.mode {
                parse_mode(m).map_err(|m| bad(f("mode"), m))?;
            }
        }
        Ok(Loaded {
            path: path.to_owned(),
            base: base.to_owned(),
            def: self,
            kernel,
            init,
        })
    }
}

impl Container {
    /// The network namespace choice.
    pub fn net_share(&self) -> Result<Share, String> {
        share(self.net.as_deref())
    }

    /// The PID namespace choice.
    pub fn pid_share(&self) -> Result<Share, String> {
        share(self.pid.as_deref())
    }
}

fn share(v: Option<&str>) -> Result<Share, String> {
    match v {
        None | Some("new") => Ok(Share::New),
        Some("host") => Ok(Share::Host),
        Some(o) => Err(format!(
            "{o:?}: only `host` or `new` (linuxkit's namespace paths are not supported)"
        )),
    }
}

/// A parsed bind: `(host, container, options)`.
pub fn parse_bind(b: &str) -> Result<(String, String, Vec<String>), String> {
    let mut parts = b.splitn(3, ':');
    let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
        return Err(format!("{b:?}: want host:container[:options]"));
    };
    if !src.starts_with('/') || !dst.starts_with('/') {
        return Err(format!("{b:?}: both paths must be absolute"));
    }
    let opts = match parts.next() {
        Some(o) => o.split(',').map(str::to_owned).collect(),
        None => vec!["rw".into(), "rbind".into(), "rprivate".into()],
    };
    Ok((src.to_owned(), dst.to_owned(), opts))
}

/// An octal mode string (`"0644"`, `"644"`, `"0o644"`).
pub fn parse_mode(m: &str) -> Result<u32, String> {
    let digits = m.strip_prefix("0o").unwrap_or(m);
    match u32::from_str_radix(digits, 8) {
        Ok(v) if v <= 0o7777 => Ok(v),
        _ => Err(format!("{m:?} is not an octal mode such as \"0644\"")),
    }
}

/// An image path: made absolute, no `.`/`..` components.
pub fn image_path(p: &str) -> Result<PathBuf, String> {
    let abs = Path::new("/").join(p);
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => return Err(format!("{p:?}: no `.` or `..` components")),
        }
    }
    if out == Path::new("/") {
        return Err(format!("{p:?}: not a path below /"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(yaml: &str) -> Result<Loaded> {
        let def: Definition = serde_yaml::from_str(yaml).map_err(|source| Error::Parse {
            path: "t.yml".into(),
            source,
        })?;
        def.validate(Path::new("t.yml"), Path::new("/repo/linuxkit"))
    }

    #[test]
    fn unknown_key_names_the_line() {
        let e =
            load_str("kernel:\n  image: deb:linux-image-amd64\n  cmdline: x\ntrust:\n  org: []\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field `trust`"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let e = load_str(
            "kernel: {image: deb:linux-image-amd64}\nservices:\n  - name: a\n    image: oci:x\n    privileged: true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown field `privileged`") && e.contains("line 5"),
            "{e}"
        );
    }

    #[test]
    fn valid_document_resolves_references() {
        let l = load_str(
            "kernel: {image: deb:linux-image-amd64, cmdline: console=ttyS0, modules: [ext4, virtio-blk]}\n\
             init: [deb:busybox-static, deb:runc/usr/sbin/runc, cargo:outpostd, oci:../images/hello, dir:pkg/init]\n\
             onboot:\n  - {name: dhcpcd, image: oci:pkg/dhcpcd, net: host, binds: [/run/x:/run/x]}\n\
             files:\n  - {path: etc/hostname, contents: outpost}\n  - {path: /persist, directory: true, mode: \"0700\"}\n",
        )
        .unwrap();
        assert_eq!(l.init.len(), 5);
        assert_eq!(
            l.init[3],
            Source::Oci {
                dir: PathBuf::from("/repo/linuxkit/../images/hello")
            }
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        for (yaml, want) in [
            ("kernel: {image: cargo:x}", "kernel.image"),
            ("kernel: {image: deb:linux-image-amd64, modules: [\"a b\"]}", "kernel.modules[0]"),
            ("kernel: {image: deb:linux-image-amd64}\ninit: [\"http://x\"]", "init[0]"),
            ("kernel: {image: deb:linux-image-amd64}\nservices: [{name: A, image: oci:x}]", "services[0].name"),
            ("kernel: {image: deb:linux-image-amd64}\nonboot: [{name: a, image: deb:x}]", "onboot[0].image"),
            ("kernel: {image: deb:linux-image-amd64}\nonboot: [{name: a, image: oci:x, net: /proc/1/ns/net}]", "onboot[0].net"),
            ("kernel: {image: deb:linux-image-amd64}\nonboot: [{name: a, image: oci:x, binds: [\"run:/run\"]}]", "onboot[0].binds[0]"),
            ("kernel: {image: deb:linux-image-amd64}\nfiles: [{path: a, contents: x, symlink: y}]", "files[0]"),
            ("kernel: {image: deb:linux-image-amd64}\nfiles: [{path: ../a, contents: x}]", "files[0].path"),
            ("kernel: {image: deb:linux-image-amd64}\nfiles: [{path: a, contents: x, mode: \"0999\"}]", "files[0].mode"),
        ] {
            let e = load_str(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn binds_and_modes() {
        assert_eq!(
            parse_bind("/a:/b").unwrap(),
            (
                "/a".into(),
                "/b".into(),
                vec!["rw".into(), "rbind".into(), "rprivate".into()]
            )
        );
        assert_eq!(parse_bind("/a:/b:ro,rbind").unwrap().2, vec!["ro", "rbind"]);
        assert_eq!(parse_mode("0600").unwrap(), 0o600);
        assert_eq!(parse_mode("0o755").unwrap(), 0o755);
        assert_eq!(image_path("etc/x").unwrap(), PathBuf::from("/etc/x"));
    }
}
