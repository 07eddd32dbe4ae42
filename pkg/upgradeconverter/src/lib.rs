//! Boot-time conversions of what an older agent left in `/persist`, in the
//! manner of EVE's `upgradeconverter` (EVE-FACTS §3): an ordered list of
//! [`Handler`]s, each idempotent and crash-safe, run before the user
//! containerd starts and before any app starts.
//!
//! * [`run`] runs [`HANDLERS`] in order. A handler's failure is reported and
//!   the next handler still runs; each handler that completes is recorded
//!   in the store ([`outpost_store::Store::mark_handler_done`]).
//! * `dry_run` reports what would change and changes nothing (use
//!   [`OpenedStore::open`] with `dry_run` so the store is a throw-away copy).
//! * Handlers: `migrateStoreSchema` (reports the schema migration that ran
//!   at open), `moveToUserContainerd` (`<persist>/containerd` →
//!   `<persist>/vault/containerd`), `convertPersistVolumes` (old container
//!   dirs → container volumes with `snapshotid.txt`, so apps keep their old
//!   snapshots and data).
//! * Every step is a copy to a temp name, a rename, then a removal of the
//!   old: a `kill -9` anywhere leaves a state the next run finishes
//!   (`tests/crash.rs` kills at every step).
//!
//! `docs/upgrade.md` describes the layouts and how to add a handler.
//!
//! # Current limitations
//! * VM images in `/persist/img/` (EVE converts them too) are not handled:
//!   Outpost runs containers only.
//! * The copy keeps modes, owners and symlinks, not timestamps, extended
//!   attributes or hard links (each link becomes its own file); device
//!   nodes, FIFOs and sockets in an old dir fail that dir. Old container
//!   dirs hold only `image-config.json` and an empty `rootfs/` mount point
//!   (the data is in the snapshot), so this has not mattered.
//! * `moveToUserContainerd` is a rename: across file systems it fails and
//!   says so.
//! * Every handler runs at every boot (they are idempotent and cheap when
//!   there is nothing to do); the store records when each last completed,
//!   for the report, and is not used to skip one.
//! * No backward schema migration is run here; a rollback to an older
//!   binary must call `Store::roll_back_schema` before booting it.

mod context;
pub mod copy;
mod error;
mod handler;
pub mod handlers;
pub mod old_layout;
mod report;
mod store_open;

pub use context::{Context, StepHook};
pub use error::{ConvertError, Result};
pub use handler::{run_handlers, Handler, Run, HANDLERS};
pub use report::{Change, HandlerReport, Report};
pub use store_open::{probe_schema_version, OpenedStore};

/// Runs every handler of [`HANDLERS`] in order; see [`run_handlers`].
pub fn run(ctx: &Context<'_>, dry_run: bool) -> Report {
    run_handlers(ctx, HANDLERS, dry_run)
}
