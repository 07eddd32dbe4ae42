//! Statuses of apps being removed: the plan no longer lists an app that left
//! the config, but until its removal is done it stays visible as HALTING.

use std::collections::BTreeMap;

use outpost_api::{AppStatus, SwState};

use crate::action::Action;

/// Adds to `statuses` (the ones just published) every app that `actions`
/// remove and that had a status in `before`, as its old status with state
/// HALTING. An app `statuses` already has is left as it is.
pub fn keep_removed_visible(
    actions: &[Action],
    before: &BTreeMap<String, AppStatus>,
    statuses: &mut BTreeMap<String, AppStatus>,
) {
    for a in actions
        .iter()
        .filter(|a| matches!(a, Action::Remove { .. }))
    {
        if let Some(old) = before.get(a.uuid()) {
            statuses.entry(a.uuid().to_owned()).or_insert_with(|| {
                let mut s = old.clone();
                s.state = SwState::Halting;
                s
            });
        }
    }
}
