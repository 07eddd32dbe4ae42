//! `moveToUserContainerd`: the old agent's user containerd root
//! `<persist>/containerd` becomes `<persist>/vault/containerd`, by one
//! rename (atomic, so a crash leaves either the old or the new place).
//! An existing destination is never replaced. Must run before the user
//! containerd starts.

use crate::context::Context;
use crate::copy::rename_durable;
use crate::error::ConvertError;
use crate::handler::{Handler, Run};
use crate::old_layout::old_containerd_root;
use crate::report::Change;

/// The handler.
pub const HANDLER: Handler = Handler {
    name: "moveToUserContainerd",
    description: "move <persist>/containerd to <persist>/vault/containerd",
    run,
};

fn run(ctx: &Context<'_>, r: &mut Run) {
    let (from, to) = (old_containerd_root(&ctx.layout), ctx.layout.user_root());
    if std::fs::symlink_metadata(&from).is_err() {
        return;
    }
    if std::fs::symlink_metadata(&to).is_ok() {
        r.changes.push(Change::DestinationExists { from, to });
        return;
    }
    if r.dry_run {
        r.changes.push(Change::Moved { from, to });
        return;
    }
    if let Some(parent) = to.parent() {
        if let Err(e) = std::fs::create_dir_all(parent) {
            r.errors.push(ConvertError::io("creating", parent, e));
            return;
        }
    }
    ctx.step("moveToUserContainerd:before-rename");
    match rename_durable(&from, &to) {
        Ok(()) => r.changes.push(Change::Moved { from, to }),
        Err(e) => r.errors.push(e),
    }
}
