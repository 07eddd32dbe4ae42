//! `convertPersistVolumes`, the snapshot-ID conversion (EVE-FACTS §2, §3).
//!
//! Each old container dir `<persist>/runx/pods/prepared/<SHA>-<appUUID>[#<purge>]`
//! becomes `<persist>/vault/volumes/<appUUID>#<purge or 0>.container`: in
//! Outpost a container volume's UUID is the app UUID and its generation the
//! purge counter ([`outpost_runtime::Runtime::volume_dir`]). The mapping
//! comes from the dir name; the checkpointed config (if any) is consulted
//! to report apps it does not name and purge counters that differ. Both are
//! still converted by name, so no data is lost: a volume of an app no config
//! names stays until a config names the app, and a differing purge counter
//! means the agent purges (creates the newer generation fresh), as it would
//! have without the upgrade.
//!
//! Per dir, crash-safe in this order:
//! 1. copy the dir to `<volumes>/.<dest>.converting` (a temp name the
//!    agent never reads); a leftover temp dir is a half-done copy and is
//!    removed and redone;
//! 2. write `snapshotid.txt` (the old basename) into the temp copy: the
//!    destination then appears complete, snapshot ID included, in one step
//!    (EVE writes it after removing the old dir, which loses the ID if it
//!    dies in between);
//! 3. rename the temp dir to the destination;
//! 4. remove the old dir.
//!
//! A destination that exists is never touched: if its `snapshotid.txt`
//! names the old dir, it is this conversion done before a crash in step 4
//! and only the old dir's removal is finished; otherwise both are left and
//! reported ([`Change::DestinationExists`]).

use std::collections::HashMap;
use std::path::Path;

use outpost_api::parse_device_config;
use outpost_runtime::volume::{container_volume_dir, save_snapshot_id, SNAPSHOT_ID_FILE};

use crate::context::Context;
use crate::copy::{copy_tree, rename_durable};
use crate::error::{ConvertError, Result};
use crate::handler::{Handler, Run};
use crate::old_layout::{basename, parse_old_name, prepared_dir, OldContainerDir};
use crate::report::Change;

/// The handler.
pub const HANDLER: Handler = Handler {
    name: "convertPersistVolumes",
    description: "move old container dirs to <persist>/vault/volumes, keeping their snapshots",
    run,
};

/// Suffix of the temp copy in the volumes dir.
pub const TEMP_SUFFIX: &str = ".converting";

fn run(ctx: &Context<'_>, r: &mut Run) {
    let prepared = prepared_dir(&ctx.layout);
    let mut names: Vec<String> = match std::fs::read_dir(&prepared) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            r.errors.push(ConvertError::io("listing", prepared, e));
            return;
        }
    };
    if names.is_empty() {
        return;
    }
    names.sort();
    let checkpoint = checkpointed_apps(ctx, r);
    for name in names {
        let old = prepared.join(&name);
        if !old.is_dir() {
            r.changes.push(Change::Skipped {
                path: old,
                reason: "not a directory".into(),
            });
            continue;
        }
        let Some(parsed) = parse_old_name(&name) else {
            r.changes.push(Change::Skipped {
                path: old,
                reason: "name is not <SHA>-<appUUID>[#<purge>]".into(),
            });
            continue;
        };
        if let Some(apps) = &checkpoint {
            note_checkpoint(apps, &parsed, r);
        }
        if let Err(e) = convert_one(ctx, r, &old, &parsed) {
            r.errors.push(e);
        }
    }
}

/// App UUID → (display name, purge counter) from the applied checkpoint.
type Checkpointed = HashMap<String, (String, u64)>;

fn checkpointed_apps(ctx: &Context<'_>, r: &mut Run) -> Option<Checkpointed> {
    match ctx.store.applied_config() {
        Ok(Some(cp)) => match parse_device_config(&String::from_utf8_lossy(&cp.raw)) {
            Ok(p) => Some(
                p.config
                    .apps
                    .iter()
                    .map(|a| {
                        (
                            a.uuid.to_ascii_lowercase(),
                            (a.display_name.clone(), a.purge_counter),
                        )
                    })
                    .collect(),
            ),
            Err(e) => {
                r.changes.push(Change::Note(format!(
                    "the checkpointed config does not parse ({e}): converting by directory name only"
                )));
                None
            }
        },
        Ok(None) => {
            r.changes.push(Change::Note(
                "no checkpointed config: converting by directory name only".into(),
            ));
            None
        }
        Err(e) => {
            r.errors.push(e.into());
            None
        }
    }
}

fn note_checkpoint(apps: &Checkpointed, p: &OldContainerDir, r: &mut Run) {
    match apps.get(&p.app_uuid) {
        None => r.changes.push(Change::Note(format!(
            "app {} is not in the checkpointed config: converted by its directory name; the volume stays until a config names the app",
            p.app_uuid
        ))),
        Some((name, purge)) if *purge != p.purge => r.changes.push(Change::Note(format!(
            "app {name} ({}): the checkpoint has purge counter {purge}, the old dir {}: converted as generation {}; the agent creates generation {purge} fresh",
            p.app_uuid, p.purge, p.purge
        ))),
        Some(_) => {}
    }
}

fn convert_one(ctx: &Context<'_>, r: &mut Run, old: &Path, p: &OldContainerDir) -> Result<()> {
    let volumes = ctx.layout.volumes();
    let id = basename(old);
    let new = container_volume_dir(&volumes, &p.app_uuid, p.purge);
    let tmp = volumes.join(format!(".{}{TEMP_SUFFIX}", basename(&new)));
    if let Some(m) = outpost_runtime::mount::mounts_under(old).into_iter().next() {
        return Err(ConvertError::Mounted { path: m });
    }
    if std::fs::symlink_metadata(&new).is_ok() {
        let ours = std::fs::read(new.join(SNAPSHOT_ID_FILE)).is_ok_and(|b| b == id.as_bytes());
        if !ours {
            r.changes.push(Change::DestinationExists {
                from: old.to_path_buf(),
                to: new,
            });
            return Ok(());
        }
        // Converted before a crash: only the old dir's removal is left.
        remove(r, &tmp, "half-done copy left by an interrupted run")?;
        ctx.step("convertPersistVolumes:before-remove-old");
        return remove(r, old, "already converted");
    }
    remove(r, &tmp, "half-done copy left by an interrupted run")?;
    let moved = Change::Moved {
        from: old.to_path_buf(),
        to: new.clone(),
    };
    let saved = Change::SnapshotIdSaved {
        dir: new.clone(),
        id,
    };
    if r.dry_run {
        r.changes.extend([moved, saved]);
        r.changes.push(Change::Removed {
            path: old.to_path_buf(),
            why: "converted",
        });
        return Ok(());
    }
    std::fs::create_dir_all(&volumes).map_err(|e| ConvertError::io("creating", &volumes, e))?;
    ctx.step("convertPersistVolumes:before-copy");
    copy_tree(old, &tmp, &|| {
        ctx.step("convertPersistVolumes:copied-entry")
    })?;
    ctx.step("convertPersistVolumes:before-snapshot-id");
    save_snapshot_id(old, &tmp).map_err(|source| ConvertError::SnapshotId {
        path: tmp.clone(),
        source,
    })?;
    ctx.step("convertPersistVolumes:before-rename");
    rename_durable(&tmp, &new)?;
    r.changes.extend([moved, saved]);
    ctx.step("convertPersistVolumes:before-remove-old");
    remove(r, old, "converted")
}

/// Removes `path` if it exists (dry run: reports only).
fn remove(r: &mut Run, path: &Path, why: &'static str) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if !r.dry_run {
        std::fs::remove_dir_all(path).map_err(|e| ConvertError::io("removing", path, e))?;
    }
    r.changes.push(Change::Removed {
        path: path.to_path_buf(),
        why,
    });
    Ok(())
}
