//! Disk budget: refuse a pull that would leave less than a reserve free on
//! the content store's filesystem, before any byte is written.

use std::path::Path;

use super::error::PullError;

/// Default bytes kept free on the content store's filesystem.
pub const DEFAULT_RESERVE: u64 = 256 << 20;

/// Free bytes (for unprivileged users, as `df` shows) on `path`'s filesystem.
pub fn available(path: &Path) -> Result<u64, PullError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|source| PullError::Statvfs {
        path: path.to_owned(),
        source,
    })?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Errors unless `need + reserve` bytes are free on `path`'s filesystem.
pub fn check(reference: &str, path: &Path, need: u64, reserve: u64) -> Result<(), PullError> {
    let available = available(path)?;
    if need.saturating_add(reserve) > available {
        return Err(PullError::DiskBudget {
            reference: reference.to_owned(),
            need,
            reserve,
            available,
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reserve_is_refused_and_names_the_path() {
        let dir = std::env::temp_dir();
        assert!(check("r.io/a", &dir, 1, 0).is_ok());
        let e = check("r.io/a", &dir, 1, u64::MAX / 2).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("r.io/a") && text.contains(&dir.display().to_string()),
            "{text}"
        );
    }
}
