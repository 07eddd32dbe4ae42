//! `migrateStoreSchema`: reports the state database's schema version before
//! and after this boot. The forward migrations themselves run inside
//! [`outpost_store::Store::open`] (one write transaction with the version
//! bump), which happened before the converter got the store; this handler
//! makes them visible in the report and is where a backward-migration step
//! would be invoked before handing the device to an older binary
//! ([`outpost_store::Store::roll_back_schema`]; not done at boot).

use outpost_store::SCHEMA_VERSION;

use crate::context::Context;
use crate::handler::{Handler, Run};
use crate::report::Change;

/// The handler.
pub const HANDLER: Handler = Handler {
    name: "migrateStoreSchema",
    description: "bring the state database to this binary's schema version",
    run,
};

fn run(ctx: &Context<'_>, r: &mut Run) {
    let now = match ctx.store.schema_version() {
        Ok(v) => v,
        Err(e) => {
            r.errors.push(e.into());
            return;
        }
    };
    let note = match ctx.schema_before {
        None => format!(
            "store {} at schema version {now} (binary supports {SCHEMA_VERSION}; version before opening unknown or new file)",
            ctx.store.path().display()
        ),
        Some(before) if before == now => format!(
            "store {} at schema version {now}: nothing to migrate",
            ctx.store.path().display()
        ),
        Some(before) => format!(
            "store {} migrated from schema version {before} to {now} when it was opened",
            ctx.store.path().display()
        ),
    };
    r.changes.push(Change::Note(note));
}
