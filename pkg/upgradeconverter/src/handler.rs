//! The ordered handler list and the loop that runs it.

use crate::context::Context;
use crate::error::ConvertError;
use crate::handlers;
use crate::report::{Change, HandlerReport, Report};

/// What a handler sees while it runs: whether to change anything, and
/// where to put what it did.
#[derive(Debug)]
pub struct Run {
    /// When true, report what would change and change nothing.
    pub dry_run: bool,
    /// Changes made (or that would be made), in order.
    pub changes: Vec<Change>,
    /// Failures; the handler goes on with its other items.
    pub errors: Vec<ConvertError>,
}

/// One idempotent conversion. Running it again after it completed, or
/// after it was killed at any point, must be safe and must finish the job.
#[derive(Clone, Copy, Debug)]
pub struct Handler {
    /// Stable name, the key recorded in the store (EVE's handler names).
    pub name: &'static str,
    /// One line of what it does.
    pub description: &'static str,
    /// The conversion itself.
    pub run: fn(&Context<'_>, &mut Run),
}

/// Every handler, in the order they run. New handlers go at the end.
pub const HANDLERS: &[Handler] = &[
    handlers::store_schema::HANDLER,
    handlers::user_containerd::HANDLER,
    handlers::persist_volumes::HANDLER,
];

/// Runs `list` in order. A handler that reports errors does not stop the
/// next. A handler that completes without error is recorded in the store
/// ([`outpost_store::Store::mark_handler_done`]) unless `dry_run`.
pub fn run_handlers(ctx: &Context<'_>, list: &[Handler], dry_run: bool) -> Report {
    let mut report = Report {
        dry_run,
        handlers: Vec::with_capacity(list.len()),
    };
    for h in list {
        let span = tracing::info_span!("upgrade_handler", handler = h.name);
        let _enter = span.enter();
        let mut run = Run {
            dry_run,
            changes: Vec::new(),
            errors: Vec::new(),
        };
        let previously_done_ms = match ctx.store.handler_done(h.name) {
            Ok(t) => t,
            Err(e) => {
                run.errors.push(e.into());
                None
            }
        };
        (h.run)(ctx, &mut run);
        if !dry_run && run.errors.is_empty() {
            ctx.step(&format!("{}:before-mark", h.name));
            if let Err(e) = ctx.store.mark_handler_done(h.name, ctx.now_ms) {
                run.errors.push(e.into());
            }
        }
        for c in &run.changes {
            tracing::info!(dry_run, "{}", c.describe(dry_run));
        }
        for e in &run.errors {
            tracing::error!(error = %e, "upgrade handler failed");
        }
        report.handlers.push(HandlerReport {
            name: h.name,
            description: h.description,
            previously_done_ms,
            changes: run.changes,
            errors: run.errors,
        });
    }
    report
}
