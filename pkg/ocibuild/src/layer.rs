//! One layer: from a [`LayerDef`] to a sorted entry list, then to a
//! reproducible tar+gzip blob.
//!
//! Reproducibility comes from: entries sorted by path components (parents
//! before children), mtime 0, uid/gid 0 with empty owner names, modes taken
//! from the definition (never the host's umask), GNU headers, gzip with
//! mtime 0, no file name, OS byte 255 and a fixed compression level.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};

use crate::digest::HashWriter;
use crate::error::{Error, Result};
use crate::layer_def::{LayerDef, Mode};
use crate::random::SplitMix64;

/// gzip level used for every layer (flate2's default, 6).
const GZIP_LEVEL: u32 = 6;
/// Mode of directories that are not `/tmp`-like.
const DIR_MODE: u32 = 0o755;
/// Mode of world-writable scratch directories (sticky bit).
const TMP_MODE: u32 = 0o1777;
/// Directories that get [`TMP_MODE`] when listed in `dirs:`.
const TMP_DIRS: [&str; 2] = ["/tmp", "/var/tmp"];

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Content<'a> {
    Host(&'a Path),
    Inline(&'a [u8]),
    Random { size: u64, seed: u64 },
}

/// What a path in the layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node<'a> {
    /// `explicit` is false for parents added implicitly.
    Dir {
        mode: u32,
        explicit: bool,
    },
    File {
        content: Content<'a>,
        mode: Option<u32>,
    },
    Link {
        target: &'a str,
    },
}

#[derive(Debug)]
struct Entry<'a> {
    node: Node<'a>,
    /// The definition field that declared it, for error messages.
    field: String,
}

/// The validated, sorted content of one layer.
#[derive(Debug)]
pub(crate) struct LayerPlan<'a> {
    entries: BTreeMap<Vec<&'a str>, Entry<'a>>,
}

/// What was written for one layer.
#[derive(Debug)]
pub(crate) struct WrittenLayer {
    /// Hex SHA-256 of the compressed blob.
    pub(crate) digest_hex: String,
    /// Size of the compressed blob.
    pub(crate) size: u64,
    /// Hex SHA-256 of the uncompressed tar.
    pub(crate) diff_id_hex: String,
    /// Short description for the config's history.
    pub(crate) summary: String,
}

type Problem = (String, String);

/// Checks a layer definition and orders its entries. The error is
/// `(field, problem)`, e.g. `("layers[0].write[1].path", "…")`.
pub(crate) fn plan(def: &LayerDef, index: usize) -> std::result::Result<LayerPlan<'_>, Problem> {
    let mut p = LayerPlan {
        entries: BTreeMap::new(),
    };
    let f = |list: &str, i: usize, leaf: &str| format!("layers[{index}].{list}[{i}]{leaf}");
    for (i, d) in def.files.iter().enumerate() {
        let field = f("files", i, ".to");
        let node = Node::File {
            content: Content::Host(&d.from),
            mode: d.mode.map(|Mode(m)| m),
        };
        p.insert(split_abs(&d.to, &field)?, node, field)?;
    }
    for (i, d) in def.links.iter().enumerate() {
        let field = f("links", i, ".path");
        if d.target.is_empty() || d.target.contains('\0') {
            return Err((f("links", i, ".target"), "must be a non-empty path".into()));
        }
        let node = Node::Link { target: &d.target };
        p.insert(split_abs(&d.path, &field)?, node, field)?;
    }
    for (i, a) in def.busybox_applets.iter().enumerate() {
        let field = f("busybox_applets", i, "");
        if a.is_empty() || a == "." || a == ".." || a.contains(['/', '\0']) {
            return Err((field, format!("{a:?} is not an applet name")));
        }
        let node = Node::Link { target: "busybox" };
        p.insert(vec!["bin", a.as_str()], node, field)?;
    }
    for (i, d) in def.dirs.iter().enumerate() {
        let field = f("dirs", i, "");
        let key = split_abs(d, &field)?;
        let canonical = format!("/{}", key.join("/"));
        let mode = if TMP_DIRS.contains(&canonical.as_str()) {
            TMP_MODE
        } else {
            DIR_MODE
        };
        let node = Node::Dir {
            mode,
            explicit: true,
        };
        p.insert(key, node, field)?;
    }
    for (i, d) in def.write.iter().enumerate() {
        let field = f("write", i, ".path");
        let node = Node::File {
            content: Content::Inline(d.content.as_bytes()),
            mode: Some(d.mode.map_or(0o644, |Mode(m)| m)),
        };
        p.insert(split_abs(&d.path, &field)?, node, field)?;
    }
    for (i, d) in def.random.iter().enumerate() {
        let field = f("random", i, ".path");
        let node = Node::File {
            content: Content::Random {
                size: d.size,
                seed: d.seed,
            },
            mode: Some(d.mode.map_or(0o644, |Mode(m)| m)),
        };
        p.insert(split_abs(&d.path, &field)?, node, field)?;
    }
    if p.entries.is_empty() {
        return Err((
            format!("layers[{index}]"),
            "layer is empty: give at least one of files, links, busybox_applets, dirs, \
             write, random"
                .into(),
        ));
    }
    Ok(p)
}

/// Splits an absolute, normalised image path into its components.
fn split_abs<'a>(path: &'a str, field: &str) -> std::result::Result<Vec<&'a str>, Problem> {
    let bad = |why: &str| Err((field.to_owned(), format!("{path:?} {why}")));
    let Some(rest) = path.strip_prefix('/') else {
        return bad("must be an absolute path inside the image (start with /)");
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return bad("is the image root; name a path below it");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    let comps: Vec<&str> = rest.split('/').collect();
    if comps
        .iter()
        .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return bad("must be normalised (no empty, . or .. components)");
    }
    Ok(comps)
}

fn show(key: &[&str]) -> String {
    format!("/{}", key.join("/"))
}

impl<'a> LayerPlan<'a> {
    fn insert(
        &mut self,
        key: Vec<&'a str>,
        node: Node<'a>,
        field: String,
    ) -> std::result::Result<(), Problem> {
        for n in 1..key.len() {
            let parent = &key[..n];
            match self.entries.get(parent) {
                None => {
                    let dir = Node::Dir {
                        mode: DIR_MODE,
                        explicit: false,
                    };
                    let e = Entry {
                        node: dir,
                        field: field.clone(),
                    };
                    self.entries.insert(parent.to_vec(), e);
                }
                Some(Entry {
                    node: Node::Dir { .. },
                    ..
                }) => {}
                Some(other) => {
                    return Err((
                        field,
                        format!(
                            "parent {} is not a directory (declared by {})",
                            show(parent),
                            other.field
                        ),
                    ))
                }
            }
        }
        let Some(existing) = self.entries.get(&key) else {
            self.entries.insert(key, Entry { node, field });
            return Ok(());
        };
        let conflict = match (&existing.node, &node) {
            (
                Node::Dir {
                    explicit: false, ..
                },
                Node::Dir { .. },
            ) => false,
            (
                Node::Dir { explicit: true, .. },
                Node::Dir {
                    explicit: false, ..
                },
            ) => return Ok(()),
            (old, new) => old != new,
        };
        if conflict {
            let why = match existing.node {
                Node::Dir {
                    explicit: false, ..
                } => format!(
                    "{} is a directory (parent of the path in {})",
                    show(&key),
                    existing.field
                ),
                _ => format!(
                    "{} is also declared, differently, by {}",
                    show(&key),
                    existing.field
                ),
            };
            return Err((field, why));
        }
        self.entries.insert(key, Entry { node, field });
        Ok(())
    }

    fn summary(&self) -> String {
        let (mut files, mut links, mut dirs) = (0, 0, 0);
        for e in self.entries.values() {
            match e.node {
                Node::Dir { .. } => dirs += 1,
                Node::File { .. } => files += 1,
                Node::Link { .. } => links += 1,
            }
        }
        format!("files: {files}, symlinks: {links}, directories: {dirs}")
    }
}

/// Writes `plan` as a gzip-compressed tar to `dest`, hashing both the
/// compressed stream (blob digest) and the tar itself (diff ID).
///
/// `base_dir` resolves relative host paths; `index` is used in errors.
pub(crate) fn write(
    plan: &LayerPlan<'_>,
    index: usize,
    base_dir: &Path,
    dest: &Path,
) -> Result<WrittenLayer> {
    let werr = |e: io::Error| Error::io("writing layer blob", dest)(e);
    let file = File::create(dest).map_err(Error::io("creating layer blob", dest))?;
    let gz = GzBuilder::new().mtime(0).operating_system(255).write(
        HashWriter::new(BufWriter::new(file)),
        Compression::new(GZIP_LEVEL),
    );
    let mut tar = tar::Builder::new(HashWriter::new(gz));
    for (key, entry) in &plan.entries {
        append(&mut tar, &key.join("/"), &entry.node, index, base_dir, dest)?;
    }
    let (gz, diff_id_hex, _) = tar.into_inner().map_err(werr)?.finish();
    let (mut buf, digest_hex, size) = gz.finish().map_err(werr)?.finish();
    buf.flush().map_err(werr)?;
    let file = buf.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    Ok(WrittenLayer {
        digest_hex,
        size,
        diff_id_hex,
        summary: plan.summary(),
    })
}

/// Appends one entry with a normalised header (mtime 0, uid/gid 0).
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    node: &Node<'_>,
    index: usize,
    base_dir: &Path,
    dest: &Path,
) -> Result<()> {
    let werr = |e: io::Error| Error::io("writing layer blob", dest)(e);
    let mut h = tar::Header::new_gnu();
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    match node {
        Node::Dir { mode, .. } => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(*mode);
            h.set_size(0);
            tar.append_data(&mut h, path, io::empty()).map_err(werr)
        }
        Node::Link { target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            tar.append_link(&mut h, path, target).map_err(werr)
        }
        Node::File { content, mode } => {
            h.set_entry_type(tar::EntryType::Regular);
            match content {
                Content::Inline(bytes) => {
                    h.set_mode(mode.unwrap_or(0o644));
                    h.set_size(bytes.len() as u64);
                    tar.append_data(&mut h, path, *bytes).map_err(werr)
                }
                Content::Random { size, seed } => {
                    h.set_mode(mode.unwrap_or(0o644));
                    h.set_size(*size);
                    let data = SplitMix64::new(*seed).take(*size);
                    tar.append_data(&mut h, path, data).map_err(werr)
                }
                Content::Host(from) => {
                    let src = base_dir.join(from);
                    let (reader, size, host_mode) = open_host(&src, index)?;
                    h.set_mode(mode.unwrap_or(host_mode));
                    h.set_size(size);
                    tar.append_data(&mut h, path, reader).map_err(|e| {
                        if e.kind() == io::ErrorKind::UnexpectedEof {
                            Error::SourceFile {
                                layer: index,
                                path: src.clone(),
                                problem: "file shrank while it was being read".into(),
                            }
                        } else {
                            Error::io("copying into layer", &src)(e)
                        }
                    })
                }
            }
        }
    }
}

/// Opens a host file for copying: `(reader, size, default mode)`. The reader
/// yields exactly `size` bytes or fails with `UnexpectedEof`.
fn open_host(src: &Path, layer: usize) -> Result<(ExactReader<File>, u64, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let problem = |problem: String| Error::SourceFile {
        layer,
        path: src.to_owned(),
        problem,
    };
    let file = File::open(src).map_err(|e| problem(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| problem(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(problem(
            "is not a regular file (only regular files can be copied)".into(),
        ));
    }
    let mode = if meta.permissions().mode() & 0o100 != 0 {
        0o755
    } else {
        0o644
    };
    let size = meta.len();
    Ok((
        ExactReader {
            inner: file,
            remaining: size,
        },
        size,
        mode,
    ))
}

/// Yields exactly `remaining` bytes of `inner`; an early EOF is an error so a
/// file that shrinks mid-copy cannot produce a corrupt tar.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_orders_parents_first_and_adds_implicit_dirs() {
        let def: LayerDef = serde_yaml::from_str(
            "write: [{path: /z/a, content: x}, {path: /a-b, content: y}]\n\
             links: [{path: /a/b/c, target: x}]\n\
             dirs: [/a]",
        )
        .unwrap();
        let p = plan(&def, 0).unwrap();
        let keys: Vec<String> = p.entries.keys().map(|k| show(k)).collect();
        assert_eq!(keys, ["/a", "/a/b", "/a/b/c", "/a-b", "/z", "/z/a"]);
        assert!(matches!(
            p.entries[&vec!["a"]].node,
            Node::Dir {
                explicit: true,
                mode: 0o755
            }
        ));
    }

    #[test]
    fn tmp_dirs_are_sticky() {
        let def: LayerDef = serde_yaml::from_str("dirs: [/tmp, /var/tmp/, /data]").unwrap();
        let p = plan(&def, 0).unwrap();
        let mode = |k: &[&str]| match p.entries[&k.to_vec()].node {
            Node::Dir { mode, .. } => mode,
            _ => unreachable!(),
        };
        assert_eq!(mode(&["tmp"]), 0o1777);
        assert_eq!(mode(&["var", "tmp"]), 0o1777);
        assert_eq!(mode(&["data"]), 0o755);
    }

    #[test]
    fn file_over_implicit_dir_is_a_conflict() {
        let def: LayerDef =
            serde_yaml::from_str("write: [{path: /a/b, content: x}, {path: /a, content: y}]")
                .unwrap();
        let (field, why) = plan(&def, 3).unwrap_err();
        assert_eq!(field, "layers[3].write[1].path");
        assert!(why.contains("/a is a directory"), "{why}");
    }
}
