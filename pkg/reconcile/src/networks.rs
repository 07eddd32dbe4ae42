//! Network instances (EVE: `NetworkInstanceConfig`): created before the
//! apps that use them, removed after their last user.
//!
//! A network is *used* by every attachment (the record of a task's CNI
//! ADDs) whose task still exists or is about to be created. An attachment
//! whose task is gone — the agent died between CNI ADD and container
//! create, and the app then changed or went away — is an orphan: it is
//! DELed, and does not keep its networks alive. A network out of the config
//! that a running app still uses (e.g. an app whose entry was rejected and
//! so keeps running as it was) stays until that app is gone.

use std::collections::{BTreeMap, BTreeSet};

use outpost_api::NetworkConfig;

/// What the network plan is made from.
#[derive(Clone, Copy, Debug)]
pub struct NetworkInput<'a> {
    /// Network instances of the config in effect.
    pub desired: &'a [NetworkConfig],
    /// UUIDs of the networks this agent's root owns on the host.
    pub owned: &'a [String],
    /// Attachment records: task ID and the network UUIDs of its interfaces.
    pub attachments: &'a [(String, Vec<String>)],
    /// Tasks that exist (a container in containerd) or are about to be
    /// created (activated desired apps).
    pub live_tasks: &'a BTreeSet<String>,
}

/// What to do with network instances, in this order: `detach`, `remove`,
/// `ensure` (then the apps' actions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkPlan {
    /// Attachments of tasks that are gone, to DEL (task IDs).
    pub detach: Vec<String>,
    /// Owned networks neither configured nor used by a live task.
    pub remove: Vec<String>,
    /// Networks to create or check, config order.
    pub ensure: Vec<NetworkConfig>,
    /// Networks out of the config that live tasks still use, with those
    /// tasks (kept; for the log).
    pub held: Vec<(String, Vec<String>)>,
}

/// Decides which attachments to free and which network instances to set up
/// or remove. Pure.
pub fn plan_networks(input: &NetworkInput<'_>) -> NetworkPlan {
    let desired: BTreeSet<&str> = input.desired.iter().map(|n| n.uuid.as_str()).collect();
    let mut users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut detach = Vec::new();
    for (task, nets) in input.attachments {
        if input.live_tasks.contains(task) {
            for n in nets {
                users.entry(n.as_str()).or_default().push(task.clone());
            }
        } else {
            detach.push(task.clone());
        }
    }
    let remove = input
        .owned
        .iter()
        .filter(|u| !desired.contains(u.as_str()) && !users.contains_key(u.as_str()))
        .cloned()
        .collect();
    let held = users
        .into_iter()
        .filter(|(u, _)| !desired.contains(u))
        .map(|(u, tasks)| (u.to_owned(), tasks))
        .collect();
    NetworkPlan {
        detach,
        remove,
        ensure: input.desired.to_vec(),
        held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(uuid: &str) -> NetworkConfig {
        serde_json::from_value(serde_json::json!({
            "uuid": uuid, "name": uuid, "subnet": "10.213.1.0/24",
        }))
        .unwrap()
    }

    fn att(task: &str, nets: &[&str]) -> (String, Vec<String>) {
        (task.into(), nets.iter().map(|n| n.to_string()).collect())
    }

    fn plan(
        desired: &[&str],
        owned: &[&str],
        attachments: &[(String, Vec<String>)],
        live: &[&str],
    ) -> NetworkPlan {
        let desired: Vec<NetworkConfig> = desired.iter().map(|u| net(u)).collect();
        let owned: Vec<String> = owned.iter().map(|u| u.to_string()).collect();
        let live: BTreeSet<String> = live.iter().map(|t| t.to_string()).collect();
        plan_networks(&NetworkInput {
            desired: &desired,
            owned: &owned,
            attachments,
            live_tasks: &live,
        })
    }

    #[test]
    fn configured_networks_are_ensured_in_order_even_without_apps() {
        let p = plan(&["b", "a"], &[], &[], &[]);
        let uuids: Vec<&str> = p.ensure.iter().map(|n| n.uuid.as_str()).collect();
        assert_eq!(uuids, ["b", "a"]);
        assert!(p.remove.is_empty() && p.detach.is_empty() && p.held.is_empty());
    }

    #[test]
    fn a_network_goes_after_its_last_user() {
        // Out of the config, but app t1 still runs on it: kept.
        let used = [att("t1", &["a"])];
        let p = plan(&[], &["a"], &used, &["t1"]);
        assert!(p.remove.is_empty());
        assert_eq!(p.held, [("a".to_string(), vec!["t1".to_string()])]);
        // t1 gone (its Remove DELed it): the network goes.
        let p = plan(&[], &["a"], &[], &[]);
        assert_eq!(p.remove, ["a"]);
        // Still configured: kept even without users.
        let p = plan(&["a"], &["a"], &[], &[]);
        assert!(p.remove.is_empty());
    }

    #[test]
    fn orphaned_attachments_are_freed_and_do_not_hold_networks() {
        // The agent died after ADD for t-old; the app has a new version now.
        let recs = [att("t-old", &["a", "b"]), att("t-new", &["b"])];
        let p = plan(&["b"], &["a", "b"], &recs, &["t-new"]);
        assert_eq!(p.detach, ["t-old"]);
        assert_eq!(p.remove, ["a"]);
        assert!(p.held.is_empty());
        // A task about to be created keeps its attachment (reused, same IP).
        let p = plan(&["b"], &["b"], &[att("t-new", &["b"])], &["t-new"]);
        assert!(p.detach.is_empty());
    }

    #[test]
    fn only_owned_networks_are_removed() {
        // Another root's network appears nowhere here: nothing to remove.
        let p = plan(&[], &[], &[att("t", &["theirs"])], &["t"]);
        assert!(p.remove.is_empty());
    }
}
