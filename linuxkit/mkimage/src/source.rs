//! How `init`, `kernel.image` and `onboot`/`services` entries name what we
//! can build: linuxkit names package images in a registry; we have no such
//! registry, so an entry names a Debian package, a workspace binary, an
//! `images/*`-style OCI definition or a directory of the repository.

use std::fmt;
use std::path::{Path, PathBuf};

/// One reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `deb:<package>`: every file the installed package owns except
    /// documentation and distro integration; `deb:<package>/<path>`: that
    /// one file (which the package must own). Shared libraries follow.
    Deb {
        /// Package name.
        package: String,
        /// One file of it, absolute.
        path: Option<PathBuf>,
    },
    /// `cargo:<bin>`: a workspace binary from the release build, at `/usr/bin/<bin>`.
    Cargo {
        /// Binary name.
        bin: String,
    },
    /// `oci:<dir>`: `<dir>/image.yaml` built by outpost-ocibuild. In `init`
    /// the OCI layout lands in `/usr/share/outpost/images/<name>/` (what
    /// `outpostd --images` imports); in `onboot`/`services` it is unpacked
    /// as the container's root.
    Oci {
        /// The directory holding `image.yaml`.
        dir: PathBuf,
    },
    /// `dir:<dir>`: a directory of the repository copied onto `/` (as a
    /// linuxkit package's filesystem would be).
    Dir {
        /// The directory.
        dir: PathBuf,
    },
}

impl Source {
    /// Parses `s`; relative paths resolve against `base` (the YAML's directory).
    pub fn parse(s: &str, base: &Path) -> Result<Source, String> {
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(format!(
                "{s:?}: want deb:<package>[/<path>], cargo:<bin>, oci:<dir> or dir:<dir> \
                 (linuxkit image references need a registry this builder does not use)"
            ));
        };
        if rest.is_empty() {
            return Err(format!("{s:?}: nothing after `{scheme}:`"));
        }
        let local = |rest: &str| {
            let p = Path::new(rest);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        match scheme {
            "deb" => {
                let (package, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], Some(PathBuf::from(&rest[i..]))),
                    None => (rest, None),
                };
                let valid = package.len() >= 2
                    && package.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && package
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
                if !valid {
                    return Err(format!("{s:?}: {package:?} is not a Debian package name"));
                }
                Ok(Source::Deb {
                    package: package.to_owned(),
                    path,
                })
            }
            "cargo" => {
                if !rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!("{s:?}: {rest:?} is not a binary name"));
                }
                Ok(Source::Cargo {
                    bin: rest.to_owned(),
                })
            }
            "oci" => Ok(Source::Oci { dir: local(rest) }),
            "dir" => Ok(Source::Dir { dir: local(rest) }),
            other => Err(format!(
                "{s:?}: unknown scheme `{other}:` (want deb:, cargo:, oci: or dir:)"
            )),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Deb {
                package,
                path: None,
            } => write!(f, "deb:{package}"),
            Source::Deb {
                package,
                path: Some(p),
            } => write!(f, "deb:{package}{}", p.display()),
            Source::Cargo { bin } => write!(f, "cargo:{bin}"),
            Source::Oci { dir } => write!(f, "oci:{}", dir.display()),
            Source::Dir { dir } => write!(f, "dir:{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let b = Path::new("/r/linuxkit");
        let p = |s| Source::parse(s, b);
        assert_eq!(
            p("deb:containerd/usr/bin/ctr").unwrap(),
            Source::Deb {
                package: "containerd".into(),
                path: Some("/usr/bin/ctr".into())
            }
        );
        assert_eq!(
            p("deb:libstdc++6").unwrap(),
            Source::Deb {
                package: "libstdc++6".into(),
                path: None
            }
        );
        assert_eq!(
            p("cargo:outpostd").unwrap(),
            Source::Cargo {
                bin: "outpostd".into()
            }
        );
        assert_eq!(
            p("oci:pkg/dhcpcd").unwrap(),
            Source::Oci {
                dir: "/r/linuxkit/pkg/dhcpcd".into()
            }
        );
        assert_eq!(p("dir:/abs").unwrap(), Source::Dir { dir: "/abs".into() });
        for bad in [
            "linuxkit/init:v1",
            "deb:",
            "deb:Upper",
            "cargo:a/b",
            "http://x",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(
            p("deb:runc/usr/sbin/runc").unwrap().to_string(),
            "deb:runc/usr/sbin/runc"
        );
    }
}
