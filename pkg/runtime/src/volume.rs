//! Container volumes: `<volumes>/<uuid>#<generation>.container` holding
//! `image-config.json` and `rootfs/`, where the app's writable snapshot is
//! mounted before each start and unmounted after stop (EVE-FACTS §2).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use oci_spec::image::ImageConfiguration;

use crate::client::{Containerd, SNAPSHOTTER};
use crate::error::{Result, RuntimeError};
use crate::labels;
use crate::mount;

/// Name of the file that pins a converted volume to its old snapshot.
pub const SNAPSHOT_ID_FILE: &str = "snapshotid.txt";
/// The OCI image config kept beside the rootfs.
pub const IMAGE_CONFIG_FILE: &str = "image-config.json";

/// Directory of an app's container volume.
pub fn container_volume_dir(volumes: &Path, uuid: &str, generation: u64) -> PathBuf {
    volumes.join(format!("{uuid}#{generation}.container"))
}

/// The generation a [`container_volume_dir`] path names.
pub fn container_volume_generation(dir: &Path) -> Option<u64> {
    dir.file_name()?
        .to_str()?
        .strip_suffix(".container")?
        .rsplit_once('#')?
        .1
        .parse()
        .ok()
}

/// Directory of a data volume.
pub fn data_volume_dir(volumes: &Path, uuid: &str, generation: u64) -> PathBuf {
    volumes.join(format!("{uuid}#{generation}"))
}

/// EVE's GetSnapshotID: the whole content of `rootpath/snapshotid.txt`,
/// verbatim (no trimming), if it is readable; else the basename of `rootpath`.
pub fn snapshot_id(rootpath: &Path) -> String {
    match std::fs::read(rootpath.join(SNAPSHOT_ID_FILE)) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => rootpath
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// EVE's SaveSnapshotID: writes basename(`old`) (no newline) to
/// `new/snapshotid.txt`, mode 0644. Used by the upgrade conversion so a moved
/// volume keeps using its old snapshot.
pub fn save_snapshot_id(old: &Path, new: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let id = old
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = new.join(SNAPSHOT_ID_FILE);
    let tmp = new.join(format!(".{SNAPSHOT_ID_FILE}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| RuntimeError::io("writing", &tmp, e))?;
    f.write_all(id.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| RuntimeError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| RuntimeError::io("renaming into place", &path, e))
}

/// Creates the volume dir with `image-config.json` and `rootfs/`, and the
/// writable snapshot (keyed by [`snapshot_id`]) on top of `parent_chain`.
/// Idempotent: an existing snapshot (with the app's data) is kept.
pub async fn prepare(
    c: &Containerd,
    lease: &str,
    dir: &Path,
    image_config: &ImageConfiguration,
    parent_chain: &str,
    owner_labels: &HashMap<String, String>,
) -> Result<String> {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs)
        .map_err(|e| RuntimeError::io("creating volume", &rootfs, e))?;
    let json = serde_json::to_vec_pretty(image_config).map_err(|e| {
        RuntimeError::io("encoding image config for", dir, std::io::Error::other(e))
    })?;
    crate::instance::write_atomic(&dir.join(IMAGE_CONFIG_FILE), &json)?;
    let key = snapshot_id(dir);
    if stat(c, &key).await? {
        return Ok(key);
    }
    let mut l = owner_labels.clone();
    l.insert(labels::GC_ROOT.to_owned(), "true".to_owned());
    c.snapshots()
        .prepare(c.req_leased(
            PrepareSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                key: key.clone(),
                parent: parent_chain.to_owned(),
                labels: l,
            },
            lease,
        ))
        .await
        .map_err(|s| RuntimeError::api("snapshots.Prepare", &key, s))?;
    Ok(key)
}

/// True when snapshot `key` exists.
pub async fn stat(c: &Containerd, key: &str) -> Result<bool> {
    match c
        .snapshots()
        .stat(c.req(StatSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.to_owned(),
        }))
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
        Err(s) => Err(RuntimeError::api("snapshots.Stat", key, s)),
    }
}

/// Mounts the volume's snapshot on `rootfs/` unless it already is.
pub async fn mount_rootfs(c: &Containerd, dir: &Path) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    if mount::is_mountpoint(&rootfs) {
        return Ok(rootfs);
    }
    let key = snapshot_id(dir);
    let mounts = c
        .snapshots()
        .mounts(c.req(MountsRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.clone(),
        }))
        .await
        .map_err(|s| RuntimeError::api("snapshots.Mounts", &key, s))?
        .into_inner()
        .mounts;
    mount::mount_all(&mounts, &rootfs)?;
    Ok(rootfs)
}

/// Unmounts `rootfs/` if mounted.
pub fn unmount_rootfs(dir: &Path) -> Result<()> {
    mount::unmount(&dir.join("rootfs"))
}

/// Removes the volume: unmount, delete its snapshot, delete the directory.
pub async fn remove(c: &Containerd, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    unmount_rootfs(dir)?;
    let key = snapshot_id(dir);
    match c
        .snapshots()
        .remove(c.req(RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: key.clone(),
        }))
        .await
    {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(RuntimeError::api("snapshots.Remove", &key, s)),
    }
    std::fs::remove_dir_all(dir).map_err(|e| RuntimeError::io("removing volume", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_volume_generation_round_trips() {
        let v = Path::new("/persist/vols");
        for g in [0, 7, u64::MAX] {
            let d = container_volume_dir(v, "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10", g);
            assert_eq!(container_volume_generation(&d), Some(g));
        }
        for bad in ["x#1", "x.container", "x#a.container", ""] {
            assert_eq!(container_volume_generation(&v.join(bad)), None, "{bad}");
        }
    }

    #[test]
    fn snapshot_id_is_basename_or_file_content_verbatim() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("abc123-6f1c#0");
        let new = container_volume_dir(t.path(), "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10", 3);
        std::fs::create_dir_all(&new).unwrap();
        assert_eq!(
            snapshot_id(&new),
            "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10#3.container"
        );
        save_snapshot_id(&old, &new).unwrap();
        let raw = std::fs::read(new.join(SNAPSHOT_ID_FILE)).unwrap();
        assert_eq!(raw, b"abc123-6f1c#0", "no newline");
        assert_eq!(snapshot_id(&new), "abc123-6f1c#0");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(new.join(SNAPSHOT_ID_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // Verbatim: surrounding white space is part of the ID.
        std::fs::write(new.join(SNAPSHOT_ID_FILE), " id\n").unwrap();
        assert_eq!(snapshot_id(&new), " id\n");
    }
}
