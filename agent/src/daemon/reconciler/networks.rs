//! Network instances in the loop: created before the apps that use them,
//! removed after their last user, orphaned attachments freed
//! ([`plan_networks`] decides, the [`Driver`] acts).

use std::collections::BTreeSet;

use outpost_api::NetworkConfig;
use outpost_reconcile::{plan_networks, NetworkInput};

use super::core::Reconciler;
use crate::daemon::driver::Driver;

impl<D: Driver> Reconciler<D> {
    /// Frees orphaned attachments, removes network instances nobody uses any
    /// more and sets up the configured ones ([`plan_networks`]). Failures are
    /// logged and retried next pass; an app on a network that could not be
    /// set up reports its own error when its interfaces are added.
    pub(super) async fn converge_networks(
        &mut self,
        desired: &[NetworkConfig],
        live: &BTreeSet<String>,
    ) {
        let driver = self.exec.driver.clone();
        let state = match driver.networks().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "network state unreadable; network instances left as they are");
                return;
            }
        };
        let attachments = &state.attachments;
        let plan = plan_networks(&NetworkInput {
            desired,
            owned: &state.owned,
            attachments,
            live_tasks: live,
        });
        let mut still_used = BTreeSet::new();
        for task in &plan.detach {
            match driver.detach(task).await {
                Ok(()) => {
                    tracing::info!(task = %task, "freed the network attachment of a task that is gone")
                }
                Err(e) => {
                    tracing::warn!(task = %task, error = %e, "freeing an orphaned network attachment failed");
                    if let Some((_, nets)) = attachments.iter().find(|(t, _)| t == task) {
                        still_used.extend(nets.iter().cloned());
                    }
                }
            }
        }
        for uuid in plan.remove.iter().filter(|u| !still_used.contains(*u)) {
            self.ensured_networks.remove(uuid);
            match driver.remove_network(uuid).await {
                Ok(()) => tracing::info!(network = %uuid, "network instance removed"),
                Err(e) => {
                    tracing::warn!(network = %uuid, error = %e, "removing network instance failed")
                }
            }
        }
        for (uuid, tasks) in &plan.held {
            tracing::debug!(network = %uuid, ?tasks, "network left the config; kept until its apps are gone");
        }
        for n in &plan.ensure {
            if self.ensured_networks.get(&n.uuid) == Some(n) && driver.network_complete(n) {
                continue;
            }
            match driver.ensure_network(n).await {
                Ok(changed) => {
                    if changed {
                        tracing::info!(network = %n.uuid, name = %n.name, "network instance set up");
                    }
                    self.ensured_networks.insert(n.uuid.clone(), n.clone());
                }
                Err(e) => {
                    self.ensured_networks.remove(&n.uuid);
                    tracing::warn!(network = %n.uuid, name = %n.name, error = %e, "setting up network instance failed");
                }
            }
        }
    }
}
