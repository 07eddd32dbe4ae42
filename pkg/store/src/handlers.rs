//! Upgrade-converter bookkeeping: which boot-time conversion handlers ran.

use crate::error::Result;
use crate::limits::check_key;
use crate::store::Store;
use crate::tables;

impl Store {
    /// Records that handler `name` ran at `now_ms` (a later run overwrites the time).
    pub fn mark_handler_done(&self, name: &str, now_ms: u64) -> Result<()> {
        check_key("handler name", name)?;
        self.write("marking an upgrade handler done", |txn| {
            let mut table = txn
                .open_table(tables::HANDLERS)
                .map_err(self.fail(|| "opening table upgrade_handlers"))?;
            table
                .insert(name, now_ms)
                .map_err(self.fail(|| format!("writing table upgrade_handlers, key {name:?}")))?;
            Ok(())
        })
    }

    /// When handler `name` last ran (ms since the epoch), if it ever did.
    pub fn handler_done(&self, name: &str) -> Result<Option<u64>> {
        self.read_table(tables::HANDLERS, |table| {
            let guard = table
                .get(name)
                .map_err(self.fail(|| format!("reading table upgrade_handlers, key {name:?}")))?;
            Ok(guard.map(|g| g.value()))
        })
    }
}
