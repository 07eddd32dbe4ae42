//! What every handler works on: the paths, the state database, and a hook
//! the crash tests use to stop the process between two steps.

use outpost_runtime::Layout;
use outpost_store::Store;

/// A step hook: called with a step name before each crash-relevant step
/// (see the `step::` names in the handlers). The default does nothing;
/// tests pass one that `SIGKILL`s the process at a chosen step.
pub type StepHook = fn(&str);

fn no_hook(_: &str) {}

/// The inputs of a run.
#[derive(Debug)]
pub struct Context<'a> {
    /// Device paths (root prefix).
    pub layout: Layout,
    /// The agent's state database, opened (so its forward migrations ran).
    pub store: &'a Store,
    /// The store's schema version before it was opened, when the caller
    /// probed it ([`crate::probe_schema_version`]); `None` if unknown or new.
    pub schema_before: Option<u32>,
    /// The clock, ms since the epoch, for the handler records.
    pub now_ms: u64,
    /// Called before each crash-relevant step (tests only).
    pub on_step: StepHook,
}

impl<'a> Context<'a> {
    /// A context over `layout` and `store`, stamped with the current time.
    pub fn new(layout: Layout, store: &'a Store) -> Context<'a> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Context {
            layout,
            store,
            schema_before: None,
            now_ms,
            on_step: no_hook,
        }
    }

    /// Sets the schema version found before the store was opened.
    pub fn with_schema_before(mut self, version: Option<u32>) -> Self {
        self.schema_before = version;
        self
    }

    /// Announces `step` to the hook.
    pub(crate) fn step(&self, step: &str) {
        (self.on_step)(step);
    }
}
