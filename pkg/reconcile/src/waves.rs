//! The order the agent carries out a plan's actions in, as waves: each
//! wave runs (concurrently) after the previous one has ended.

use std::collections::BTreeSet;

use crate::action::Action;
use crate::history::History;

/// Actions split into waves, run in this order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Waves {
    /// Teardown (halts, removals): frees memory and CPUs for what starts.
    pub teardown: Vec<Action>,
    /// Starts of apps that were running before (after a reboot they come
    /// back first).
    pub returning: Vec<Action>,
    /// The other starts.
    pub rest: Vec<Action>,
}

impl Waves {
    /// Splits `actions` by kind and by whether the app was active in
    /// `before` (the history as it was *before* the plan that made them),
    /// keeping their order within each wave.
    pub fn new(actions: Vec<Action>, before: &History) -> Waves {
        let was_active: BTreeSet<&str> = before
            .apps
            .iter()
            .filter(|(_, r)| r.was_active)
            .map(|(u, _)| u.as_str())
            .collect();
        let mut w = Waves::default();
        for action in actions {
            if !action.kind().starts() {
                w.teardown.push(action);
            } else if was_active.contains(action.uuid()) {
                w.returning.push(action);
            } else {
                w.rest.push(action);
            }
        }
        w
    }

    /// The waves in the order they run.
    pub fn in_order(self) -> [Vec<Action>; 3] {
        [self.teardown, self.returning, self.rest]
    }
}
