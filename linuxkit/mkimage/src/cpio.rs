//! The `newc` cpio format the kernel unpacks an initramfs from, written
//! from a [`Tree`]: owner root, mtime 0, so the archive is reproducible and
//! device nodes need no privileges.

use std::io::Write;

use crate::error::{Error, Result};
use crate::tree::{Content, Kind, Tree};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

fn header(
    w: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) -> std::io::Result<()> {
    let namesize = name.len() + 1;
    write!(
        w,
        "070701{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}{dmaj:08x}{dmin:08x}{rmaj:08x}{rmin:08x}{namesize:08x}{check:08x}",
        uid = 0,
        gid = 0,
        mtime = 0,
        dmaj = 0,
        dmin = 0,
        rmaj = rdev.0,
        rmin = rdev.1,
        check = 0,
    )?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w, 110 + namesize)
}

fn pad(w: &mut impl Write, len: usize) -> std::io::Result<()> {
    let n = (4 - len % 4) % 4;
    w.write_all(&[0u8; 3][..n])
}

/// Writes `tree` as a newc archive (with trailer) into `w`.
pub fn write(tree: &Tree, w: &mut impl Write) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        context: "writing the initramfs archive",
        path: "<cpio>".into(),
        source: e,
    };
    let mut ino = 1u32;
    for (path, node) in tree.iter() {
        let name = path.to_string_lossy();
        let name = name.trim_start_matches('/');
        ino += 1;
        let perm = node.mode & 0o7777;
        match &node.kind {
            Kind::Dir => header(w, ino, S_IFDIR | perm, 2, 0, (0, 0), name).map_err(io)?,
            Kind::CharDev(maj, min) => {
                header(w, ino, S_IFCHR | perm, 1, 0, (*maj, *min), name).map_err(io)?
            }
            Kind::Symlink(t) => {
                let t = t.to_string_lossy();
                header(w, ino, S_IFLNK | 0o777, 1, t.len(), (0, 0), name).map_err(io)?;
                w.write_all(t.as_bytes()).map_err(io)?;
                pad(w, t.len()).map_err(io)?;
            }
            Kind::File(c) => {
                let data = match c {
                    Content::Bytes(b) => b.clone(),
                    Content::Host(p) => std::fs::read(p).map_err(Error::io("reading", p))?,
                };
                header(w, ino, S_IFREG | perm, 1, data.len(), (0, 0), name).map_err(io)?;
                w.write_all(&data).map_err(io)?;
                pad(w, data.len()).map_err(io)?;
            }
        }
    }
    header(w, 0, 0, 1, 0, (0, 0), "TRAILER!!!").map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn newc_layout() {
        let mut t = Tree::new(false);
        t.file(
            Path::new("/init"),
            Content::Bytes(b"#!/bin/sh\n".to_vec()),
            0o755,
            "t",
        )
        .unwrap();
        t.char_dev(Path::new("/dev/console"), 5, 1, 0o600, "t")
            .unwrap();
        let mut out = Vec::new();
        write(&t, &mut out).unwrap();
        assert_eq!(out.len() % 4, 0);
        let s = String::from_utf8_lossy(&out);
        assert!(s.starts_with("070701"));
        // /dev (implicit dir), /dev/console, /init, trailer.
        assert_eq!(s.matches("070701").count(), 4);
        assert!(s.contains("dev/console\0"));
        assert!(s.contains("TRAILER!!!\0"));
        // The console's header: mode 020600, rdev 5:1.
        let at = s.find("dev/console").unwrap() - 110;
        let h = &s[at..at + 110];
        assert_eq!(&h[14..22], "00002180");
        assert_eq!(&h[78..94], "0000000500000001");
    }
}
