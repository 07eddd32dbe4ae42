//! Recursive directory copy that keeps modes, owners and symlinks and
//! refuses to cross into another mounted file system.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{ConvertError, Result};

/// Copies the tree `src` to `dst` (which must not exist). Regular files,
/// directories and symlinks are copied with their mode and owner; any other
/// file type, or a mount point below `src`, is an error. `on_file` is called
/// after each copied entry (the crash tests stop there).
pub fn copy_tree(src: &Path, dst: &Path, on_file: &dyn Fn()) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(|e| ConvertError::io("reading", src, e))?;
    copy_dir(src, dst, meta.dev(), on_file)
}

fn copy_dir(src: &Path, dst: &Path, dev: u64, on_file: &dyn Fn()) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(|e| ConvertError::io("reading", src, e))?;
    if meta.dev() != dev {
        return Err(ConvertError::Mounted {
            path: src.to_path_buf(),
        });
    }
    fs::create_dir(dst).map_err(|e| ConvertError::io("creating", dst, e))?;
    let mut entries: Vec<_> = fs::read_dir(src)
        .map_err(|e| ConvertError::io("listing", src, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| ConvertError::io("listing", src, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let m = fs::symlink_metadata(&from).map_err(|e| ConvertError::io("reading", &from, e))?;
        let ft = m.file_type();
        if ft.is_dir() {
            copy_dir(&from, &to, dev, on_file)?;
            continue;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(|e| ConvertError::io("reading", &from, e))?;
            std::os::unix::fs::symlink(&target, &to)
                .map_err(|e| ConvertError::io("creating symlink", &to, e))?;
        } else if ft.is_file() {
            fs::copy(&from, &to).map_err(|e| ConvertError::io("copying", &from, e))?;
        } else {
            return Err(ConvertError::Unsupported { path: from });
        }
        std::os::unix::fs::lchown(&to, Some(m.uid()), Some(m.gid()))
            .map_err(|e| ConvertError::io("setting the owner of", &to, e))?;
        on_file();
    }
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| ConvertError::io("setting the mode of", dst, e))?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| ConvertError::io("setting the owner of", dst, e))?;
    Ok(())
}

/// Renames `from` to `to` (same file system) and syncs, so the rename is
/// on disk before anything that depends on it (removing the source).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| {
        if e.raw_os_error() == Some(nix::libc::EXDEV) {
            ConvertError::CrossDevice {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
            }
        } else {
            ConvertError::io("renaming into place", to, e)
        }
    })?;
    nix::unistd::sync();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_dirs_symlinks_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::write(src.join("a/b/f"), b"data").unwrap();
        fs::set_permissions(src.join("a/b/f"), fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("a/b/f", src.join("link")).unwrap();
        let dst = t.path().join("dst");
        copy_tree(&src, &dst, &|| {}).unwrap();
        assert_eq!(fs::read(dst.join("a/b/f")).unwrap(), b"data");
        let mode = fs::metadata(dst.join("a/b/f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("a/b/f"));
    }

    #[test]
    fn refuses_an_existing_destination() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("src")).unwrap();
        fs::create_dir(t.path().join("dst")).unwrap();
        assert!(copy_tree(&t.path().join("src"), &t.path().join("dst"), &|| {}).is_err());
    }
}
