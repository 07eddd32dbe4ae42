//! The order the agent carries out a plan's actions in, as waves: each
//! wave runs (concurrently) after the previous one has ended.

use std::collections::BTreeSet;

use crate::action::Action;
use crate::history::History;

/// Actions (or jobs carrying them) split into waves, run in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waves<T = Action> {
    /// Teardown (halts, removals): frees memory and CPUs for what starts.
    pub teardown: Vec<T>,
    /// Starts of apps that were running before (after a reboot they come
    /// back first).
    pub returning: Vec<T>,
    /// The other starts.
    pub rest: Vec<T>,
}

impl<T> Default for Waves<T> {
    fn default() -> Self {
        Waves {
            teardown: Vec::new(),
            returning: Vec::new(),
            rest: Vec::new(),
        }
    }
}

impl Waves<Action> {
    /// Splits `actions` by kind and by whether the app was active in
    /// `before` (the history as it was *before* the plan that made them),
    /// keeping their order within each wave.
    pub fn new(actions: Vec<Action>, before: &History) -> Waves {
        Waves::split(actions, before, |a| a)
    }
}

impl<T> Waves<T> {
    /// [`Waves::new`] for items that carry an action (`action_of`), such as
    /// [`Job`](crate::Job)s.
    pub fn split(items: Vec<T>, before: &History, action_of: impl Fn(&T) -> &Action) -> Waves<T> {
        let was_active: BTreeSet<&str> = before
            .apps
            .iter()
            .filter(|(_, r)| r.was_active)
            .map(|(u, _)| u.as_str())
            .collect();
        let mut w = Waves::default();
        for item in items {
            let action = action_of(&item);
            if !action.kind().starts() {
                w.teardown.push(item);
            } else if was_active.contains(action.uuid()) {
                w.returning.push(item);
            } else {
                w.rest.push(item);
            }
        }
        w
    }

    /// The waves in the order they run.
    pub fn in_order(self) -> [Vec<T>; 3] {
        [self.teardown, self.returning, self.rest]
    }
}
