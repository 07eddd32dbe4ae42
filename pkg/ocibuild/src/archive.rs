//! `oci-archive`: an OCI image layout packed as one uncompressed tar (the
//! format of `skopeo copy … oci-archive:FILE`, `buildah push oci-archive:`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Packs the layout directory `layout_dir` into the tar file `archive`.
///
/// Entries are sorted, with mtime 0 and uid/gid 0, so the same layout always
/// gives the same archive bytes. The file is written next to `archive` and
/// renamed into place when complete.
pub fn write_archive(layout_dir: &Path, archive: &Path) -> Result<()> {
    if !layout_dir.join("oci-layout").is_file() {
        return Err(Error::layout(
            layout_dir,
            "not an OCI layout (no oci-layout file)",
        ));
    }
    let mut entries = Vec::new();
    collect(layout_dir, PathBuf::new(), &mut entries)?;
    entries.sort();

    if let Some(parent) = archive.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
    }
    let mut partial = archive.as_os_str().to_owned();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let file = File::create(&partial).map_err(Error::io("creating", &partial))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let wio = || Error::io("writing archive", &partial);
    for (rel, is_dir) in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        if *is_dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            tar.append_data(&mut h, rel, io::empty()).map_err(wio())?;
        } else {
            let src = layout_dir.join(rel);
            let f = File::open(&src).map_err(Error::io("opening", &src))?;
            let len = f.metadata().map_err(Error::io("inspecting", &src))?.len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(len);
            tar.append_data(&mut h, rel, io::Read::take(f, len))
                .map_err(wio())?;
        }
    }
    let mut w = tar.into_inner().map_err(wio())?;
    w.flush().map_err(wio())?;
    w.into_inner()
        .map_err(|e| wio()(e.into_error()))?
        .sync_all()
        .map_err(wio())?;
    fs::rename(&partial, archive).map_err(Error::io("renaming archive to", archive))
}

/// Relative paths under `dir` with an "is directory" flag; symlinks and
/// special files are refused (a layout has none).
fn collect(root: &Path, rel: PathBuf, out: &mut Vec<(PathBuf, bool)>) -> Result<()> {
    let dir = root.join(&rel);
    for entry in fs::read_dir(&dir).map_err(Error::io("listing", &dir))? {
        let entry = entry.map_err(Error::io("listing", &dir))?;
        let child = rel.join(entry.file_name());
        let ty = entry
            .file_type()
            .map_err(Error::io("inspecting", entry.path()))?;
        if ty.is_dir() {
            out.push((child.clone(), true));
            collect(root, child, out)?;
        } else if ty.is_file() {
            out.push((child, false));
        } else {
            return Err(Error::layout(
                root,
                format!("{} is not a regular file or directory", child.display()),
            ));
        }
    }
    Ok(())
}

/// Unpacks the archive at `archive` into `dest` (created if missing; must be
/// empty). Only regular files and directories with plain relative paths are
/// accepted; anything else (links, devices, `..`, absolute paths) is an
/// error, since an OCI layout never needs them.
pub(crate) fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).map_err(Error::io("creating", dest))?;
    if fs::read_dir(dest)
        .map_err(Error::io("listing", dest))?
        .next()
        .is_some()
    {
        return Err(Error::Output {
            path: dest.to_owned(),
            problem: "is not empty; an archive is only unpacked into an empty directory".into(),
        });
    }
    let file = File::open(archive).map_err(Error::io("opening archive", archive))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    let rio = || Error::io("reading archive", archive);
    for entry in tar.entries().map_err(rio())? {
        let mut entry = entry.map_err(rio())?;
        let path = entry.path().map_err(rio())?.into_owned();
        let bad = |why: &str| Error::layout(archive, format!("entry {}: {why}", path.display()));
        let ty = entry.header().entry_type();
        if !(ty.is_file() || ty.is_dir()) {
            return Err(bad("only regular files and directories are allowed"));
        }
        if !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(bad("path must be relative and stay inside the layout"));
        }
        if !entry.unpack_in(dest).map_err(rio())? {
            return Err(bad("path escapes the destination"));
        }
    }
    Ok(())
}
