//! Mounting containerd's mount descriptions on the host.

use std::path::{Path, PathBuf};

use containerd_client::types::Mount;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Result, RuntimeError};

/// Mounts every entry of `mounts` (as returned by Snapshots.Mounts) on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
        for o in &m.options {
            match o.as_str() {
                "ro" => flags |= MsFlags::MS_RDONLY,
                "rw" => {}
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                "nosuid" => flags |= MsFlags::MS_NOSUID,
                "nodev" => flags |= MsFlags::MS_NODEV,
                "noexec" => flags |= MsFlags::MS_NOEXEC,
                other => data.push(other),
            }
        }
        let data = data.join(",");
        let fstype = if flags.contains(MsFlags::MS_BIND) {
            None
        } else {
            Some(m.r#type.as_str())
        };
        mount(
            Some(m.source.as_str()),
            target,
            fstype,
            flags,
            if data.is_empty() {
                None
            } else {
                Some(data.as_str())
            },
        )
        .map_err(|e| RuntimeError::io("mounting snapshot on", target, e.into()))?;
        // A read-only bind needs a remount to take effect.
        if flags.contains(MsFlags::MS_BIND | MsFlags::MS_RDONLY) {
            mount(
                None::<&str>,
                target,
                None::<&str>,
                flags | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(|e| RuntimeError::io("remounting read-only", target, e.into()))?;
        }
    }
    Ok(())
}

/// Unmounts `target` if it is a mount point (lazily, so a process still
/// holding it open cannot make the stop fail).
pub fn unmount(target: &Path) -> Result<()> {
    while is_mountpoint(target) {
        umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| RuntimeError::io("unmounting", target, e.into()))?;
    }
    Ok(())
}

/// True when `path` is a mount point in this mount namespace.
pub fn is_mountpoint(path: &Path) -> bool {
    let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mount_points().contains(&want)
}

/// Every mount point below `prefix` (for leak checks).
pub fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let want = std::fs::canonicalize(prefix).unwrap_or_else(|_| prefix.to_path_buf());
    mount_points()
        .into_iter()
        .filter(|p| p.starts_with(&want))
        .collect()
}

fn mount_points() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/x\\134y"), "/x\\y");
    }

    #[test]
    fn root_is_a_mountpoint() {
        assert!(is_mountpoint(Path::new("/")));
    }
}
