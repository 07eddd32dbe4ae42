//! A filesystem tree assembled in memory (paths → nodes, with the entry
//! that provided each), then written out as a directory (for mksquashfs)
//! or as a cpio archive (for the initramfs).
//!
//! With `merged_usr`, `/bin`, `/sbin`, `/lib` and `/lib64` are links into
//! `/usr` (as on Debian 12) and every path under them is stored under `/usr`,
//! so `/lib/x86_64-linux-gnu/libc.so.6` from one package and
//! `/usr/lib/x86_64-linux-gnu/libc.so.6` from another are the same file.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file of the build host, copied when the tree is written.
    Host(PathBuf),
    /// Bytes held in memory.
    Bytes(Vec<u8>),
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File(Content),
    /// A symbolic link to this target (stored verbatim).
    Symlink(PathBuf),
    /// A character device `(major, minor)` (cpio output only).
    CharDev(u32, u32),
}

/// One path of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// The entry that provided it (for conflicts and the size report).
    pub origin: String,
}

/// The tree.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    nodes: BTreeMap<PathBuf, Node>,
    merged_usr: bool,
}

const MERGED: &[&str] = &["bin", "sbin", "lib", "lib64"];

impl Tree {
    /// An empty tree; with `merged_usr`, the `/bin → usr/bin` style links exist.
    pub fn new(merged_usr: bool) -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
            merged_usr,
        };
        if merged_usr {
            for d in MERGED {
                t.nodes.insert(
                    Path::new("/").join(d),
                    Node {
                        kind: Kind::Symlink(Path::new("usr").join(d)),
                        mode: 0o777,
                        origin: "merged /usr".into(),
                    },
                );
                t.nodes.insert(
                    Path::new("/usr").join(d),
                    Node {
                        kind: Kind::Dir,
                        mode: 0o755,
                        origin: "merged /usr".into(),
                    },
                );
            }
        }
        t
    }

    /// The stored form of `path`: absolute, normalised, and moved under
    /// `/usr` for the merged directories.
    pub fn canonical(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::from("/");
        for c in path.components() {
            match c {
                Component::Normal(n) => out.push(n),
                Component::ParentDir => {
                    out.pop();
                }
                _ => {}
            }
        }
        if self.merged_usr {
            let mut comps = out.components().skip(1);
            if let Some(Component::Normal(first)) = comps.next() {
                if MERGED.iter().any(|m| first == *m) {
                    let rest: PathBuf = comps.collect();
                    let mut moved = Path::new("/usr").join(first);
                    if !rest.as_os_str().is_empty() {
                        moved.push(rest);
                    }
                    return moved;
                }
            }
        }
        out
    }

    /// The node at `path`, if any.
    pub fn get(&self, path: &Path) -> Option<&Node> {
        self.nodes.get(&self.canonical(path))
    }

    /// True when something is at `path`.
    pub fn contains(&self, path: &Path) -> bool {
        self.get(path).is_some()
    }

    /// Every path and node, sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&PathBuf, &Node)> {
        self.nodes.iter()
    }

    /// Adds a directory (and its parents); an existing directory stays.
    pub fn dir(&mut self, path: &Path, mode: u32, origin: &str) -> Result<()> {
        self.insert(path, Kind::Dir, mode, origin)
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &Path, content: Content, mode: u32, origin: &str) -> Result<()> {
        self.insert(path, Kind::File(content), mode, origin)
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &Path, target: impl Into<PathBuf>, origin: &str) -> Result<()> {
        self.insert(path, Kind::Symlink(target.into()), 0o777, origin)
    }

    /// Adds a character device node.
    pub fn char_dev(
        &mut self,
        path: &Path,
        major: u32,
        minor: u32,
        mode: u32,
        origin: &str,
    ) -> Result<()> {
        self.insert(path, Kind::CharDev(major, minor), mode, origin)
    }

    /// Inserts `kind` at `path`. The same thing twice is fine (first origin
    /// kept); anything else already there is a [`Error::Conflict`].
    pub fn insert(&mut self, path: &Path, kind: Kind, mode: u32, origin: &str) -> Result<()> {
        let path = self.canonical(path);
        if path == Path::new("/") {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            if !matches!(self.nodes.get(parent).map(|n| &n.kind), Some(Kind::Dir)) {
                self.insert(parent, Kind::Dir, 0o755, origin)?;
            }
        }
        match self.nodes.get(&path) {
            Some(old) if old.kind == kind && (old.mode == mode || kind == Kind::Dir) => Ok(()),
            Some(old) => Err(Error::Conflict {
                path,
                first: old.origin.clone(),
                second: origin.to_owned(),
            }),
            None => {
                self.nodes.insert(
                    path,
                    Node {
                        kind,
                        mode,
                        origin: origin.to_owned(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Puts `kind` at `path` whatever was there (a later image layer
    /// replacing an earlier one); a directory that stays a directory keeps
    /// its children, anything else loses them.
    pub fn replace(&mut self, path: &Path, kind: Kind, mode: u32, origin: &str) -> Result<()> {
        let canon = self.canonical(path);
        let keep_children =
            kind == Kind::Dir && matches!(self.nodes.get(&canon).map(|n| &n.kind), Some(Kind::Dir));
        if !keep_children {
            let below: Vec<PathBuf> = self
                .nodes
                .range(canon.clone()..)
                .take_while(|(p, _)| p.starts_with(&canon))
                .map(|(p, _)| p.clone())
                .collect();
            for p in below {
                self.nodes.remove(&p);
            }
        }
        self.nodes.remove(&canon);
        self.insert(path, kind, mode, origin)
    }

    /// Writes the tree into `dir` (which must be empty or absent).
    pub fn write_dir(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        for (path, node) in &self.nodes {
            let dest = dir.join(path.strip_prefix("/").unwrap_or(path));
            match &node.kind {
                Kind::Dir => {
                    fs::create_dir_all(&dest).map_err(Error::io("creating", &dest))?;
                }
                Kind::File(Content::Host(src)) => {
                    fs::copy(src, &dest).map_err(Error::io("copying into the image", src))?;
                }
                Kind::File(Content::Bytes(b)) => {
                    fs::write(&dest, b).map_err(Error::io("writing", &dest))?;
                }
                Kind::Symlink(target) => {
                    symlink(target, &dest).map_err(Error::io("linking", &dest))?;
                    continue;
                }
                Kind::CharDev(..) => {
                    return Err(Error::Io {
                        context: "device nodes go only into cpio archives:",
                        path: path.clone(),
                        source: std::io::ErrorKind::Unsupported.into(),
                    })
                }
            }
            fs::set_permissions(&dest, fs::Permissions::from_mode(node.mode))
                .map_err(Error::io("setting the mode of", &dest))?;
        }
        Ok(())
    }

    /// Total bytes of regular files (host files measured now).
    pub fn file_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.kind {
                Kind::File(Content::Host(p)) => fs::metadata(p).map(|m| m.len()).unwrap_or(0),
                Kind::File(Content::Bytes(b)) => b.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_paths_meet() {
        let mut t = Tree::new(true);
        let c = Content::Bytes(b"x".to_vec());
        t.file(
            Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
            c.clone(),
            0o755,
            "a",
        )
        .unwrap();
        t.file(
            Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6"),
            c,
            0o755,
            "b",
        )
        .unwrap();
        assert!(t.contains(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")));
        assert_eq!(t.canonical(Path::new("/sbin")), PathBuf::from("/usr/sbin"));
        assert_eq!(
            t.canonical(Path::new("/etc/../bin/sh")),
            PathBuf::from("/usr/bin/sh")
        );
        let e = t
            .file(
                Path::new("/bin/libc.so.6"),
                Content::Bytes(vec![]),
                0o644,
                "c",
            )
            .and_then(|_| {
                t.file(
                    Path::new("/usr/bin/libc.so.6"),
                    Content::Bytes(vec![1]),
                    0o644,
                    "d",
                )
            })
            .unwrap_err();
        assert!(e.to_string().contains("provided by both c and d"), "{e}");
    }

    #[test]
    fn writes_a_directory() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Tree::new(true);
        t.file(
            Path::new("/bin/hello"),
            Content::Bytes(b"hi".to_vec()),
            0o755,
            "t",
        )
        .unwrap();
        t.symlink(Path::new("/sbin/init"), "/bin/hello", "t")
            .unwrap();
        t.dir(Path::new("/tmp"), 0o1777, "t").unwrap();
        let out = d.path().join("root");
        t.write_dir(&out).unwrap();
        assert_eq!(fs::read(out.join("bin/hello")).unwrap(), b"hi");
        assert_eq!(
            fs::read_link(out.join("usr/sbin/init")).unwrap(),
            PathBuf::from("/bin/hello")
        );
        let m = fs::metadata(out.join("tmp")).unwrap().permissions().mode();
        assert_eq!(m & 0o7777, 0o1777);
    }
}
