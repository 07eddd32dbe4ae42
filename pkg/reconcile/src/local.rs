//! The operator's local restart/purge commands (EVE's local commands): the
//! agent keeps a counter per app and adds it to the controller's, so the
//! planner sees a local command as a counter change.

use std::collections::BTreeMap;

use outpost_api::AppConfig;

/// An app's local command counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalCounters {
    /// Local restarts requested.
    pub restart: u64,
    /// Local purges requested.
    pub purge: u64,
}

/// The desired `apps` with the local counters (by app UUID; none = 0) added
/// to their restart and purge counters, wrapping: any change counts, so a
/// sum past `u64::MAX` still differs from the previous one.
pub fn with_local_counters(
    apps: &[AppConfig],
    local: &BTreeMap<String, LocalCounters>,
) -> Vec<AppConfig> {
    apps.iter()
        .map(|app| {
            let l = local.get(&app.uuid).copied().unwrap_or_default();
            let mut a = app.clone();
            a.restart_counter = a.restart_counter.wrapping_add(l.restart);
            a.purge_counter = a.purge_counter.wrapping_add(l.purge);
            a
        })
        .collect()
}
