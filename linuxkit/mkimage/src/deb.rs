//! Installed Debian packages, read through `dpkg-query`: which files a
//! package owns, what it depends on, and where its kernel is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Paths a `deb:<package>` entry leaves out: documentation and the
/// distribution's integration (init scripts, systemd units, hooks), which
/// mean nothing on the device.
pub const SKIPPED: &[&str] = &[
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/lintian",
    "/usr/share/bug",
    "/usr/share/bash-completion",
    "/usr/share/zsh",
    "/usr/share/fish",
    "/usr/share/initramfs-tools",
    "/lib/systemd",
    "/usr/lib/systemd",
    "/etc/init.d",
    "/etc/default",
    "/etc/logrotate.d",
    "/etc/cron.d",
    "/etc/cron.daily",
];

fn dpkg_query(args: &[&str], package: &str) -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(args)
        .arg(package)
        .output()
        .map_err(|e| Error::Tool {
            tool: "dpkg-query".into(),
            what: format!("{args:?} {package}"),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Package {
            package: package.to_owned(),
            message: format!(
                "not installed ({}); run scripts/install-deps.sh",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when `package` is installed.
pub fn installed(package: &str) -> bool {
    dpkg_query(&["-W", "-f=${Status}"], package).is_ok_and(|s| s.contains("install ok installed"))
}

fn require_installed(package: &str) -> Result<()> {
    if installed(package) {
        Ok(())
    } else {
        Err(Error::Package {
            package: package.to_owned(),
            message: "not installed; run scripts/install-deps.sh".into(),
        })
    }
}

/// Every path `package` owns (files, links and directories), as dpkg lists them.
pub fn owned_paths(package: &str) -> Result<Vec<PathBuf>> {
    require_installed(package)?;
    let list = dpkg_query(&["-L"], package)?;
    Ok(list
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(PathBuf::from)
        .collect())
}

/// The files (and links) of `package` a `deb:<package>` entry copies.
pub fn payload(package: &str) -> Result<Vec<PathBuf>> {
    Ok(owned_paths(package)?
        .into_iter()
        .filter(|p| !SKIPPED.iter().any(|s| p.starts_with(s)))
        // Directories (and, on a merged-/usr host, `/bin` and friends, which
        // dpkg lists but are links to directories) come implicitly.
        .filter(|p| p.symlink_metadata().is_ok() && !p.is_dir())
        .collect())
}

/// Checks that `package` owns `path` and returns it.
pub fn owned_file(package: &str, path: &Path) -> Result<PathBuf> {
    let owned = owned_paths(package)?;
    // dpkg may list a merged-/usr file under /bin or /usr/bin: accept either.
    let alt = |p: &Path| -> Option<PathBuf> {
        let s = p.to_str()?;
        s.strip_prefix("/usr")
            .filter(|r| {
                ["/bin/", "/sbin/", "/lib/", "/lib64/"]
                    .iter()
                    .any(|m| r.starts_with(m))
            })
            .map(PathBuf::from)
            .or_else(|| {
                ["/bin/", "/sbin/", "/lib/", "/lib64/"]
                    .iter()
                    .any(|m| s.starts_with(m))
                    .then(|| Path::new("/usr").join(&s[1..]))
            })
    };
    if owned
        .iter()
        .any(|o| o == path || alt(o).as_deref() == Some(path))
    {
        Ok(path.to_owned())
    } else {
        Err(Error::Package {
            package: package.to_owned(),
            message: format!("does not own {} (see `dpkg -L {package}`)", path.display()),
        })
    }
}

/// The first alternative of each of `package`'s `Depends`.
pub fn depends(package: &str) -> Result<Vec<String>> {
    let d = dpkg_query(&["-W", "-f=${Depends}"], package)?;
    Ok(parse_depends(&d))
}

fn parse_depends(d: &str) -> Vec<String> {
    d.split(',')
        .filter_map(|alt| {
            let first = alt.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

/// A kernel found in a package: the image and its release (`uname -r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFiles {
    /// The package that owns the kernel image (after following a metapackage).
    pub package: String,
    /// `/boot/vmlinuz-<release>`.
    pub image: PathBuf,
    /// The release string (`6.1.0-28-amd64`).
    pub release: String,
    /// `/lib/modules/<release>`.
    pub modules: PathBuf,
}

/// Finds the kernel of `package`, following a metapackage's dependencies
/// (`linux-image-amd64` → `linux-image-6.1.0-…-amd64`).
pub fn kernel(package: &str) -> Result<KernelFiles> {
    let mut todo = vec![(package.to_owned(), 0)];
    while let Some((p, depth)) = todo.pop() {
        if let Some(image) = owned_paths(&p)?.into_iter().find(|f| {
            f.parent() == Some(Path::new("/boot"))
                && f.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        }) {
            let release = image
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_start_matches("vmlinuz-")
                        .to_owned()
                })
                .unwrap_or_default();
            let modules = Path::new("/lib/modules").join(&release);
            if !modules.join("modules.dep").exists() {
                return Err(Error::Package {
                    package: p,
                    message: format!("{} has no modules.dep", modules.display()),
                });
            }
            return Ok(KernelFiles {
                package: p,
                image,
                release,
                modules,
            });
        }
        if depth < 2 {
            for d in depends(&p)? {
                if d.starts_with("linux-image") && installed(&d) {
                    todo.push((d, depth + 1));
                }
            }
        }
    }
    Err(Error::Package {
        package: package.to_owned(),
        message: "holds no /boot/vmlinuz-* (nor does a linux-image-* it depends on)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_takes_first_alternatives() {
        assert_eq!(
            parse_depends(
                "linux-image-6.1.0-28-amd64 (= 6.1.119-1), kmod | foo, libc6:amd64 (>= 2.34)"
            ),
            vec!["linux-image-6.1.0-28-amd64", "kmod", "libc6"]
        );
        assert!(parse_depends("").is_empty());
    }

    #[test]
    fn reads_an_installed_package() {
        // dpkg itself is installed on every Debian system.
        let files = payload("dpkg").unwrap();
        assert!(files.iter().any(|f| f.ends_with("dpkg-query")), "{files:?}");
        assert!(!files.iter().any(|f| f.starts_with("/usr/share/doc")));
        let q = files.iter().find(|f| f.ends_with("dpkg-query")).unwrap();
        owned_file("dpkg", q).unwrap();
        assert!(owned_file("dpkg", Path::new("/etc/passwd")).is_err());
        assert!(payload("no-such-package-outpost").is_err());
    }
}
