//! The rest of [`Runtime`]'s facade: images, network instances and image GC
//! as one handle, so a caller never reaches for the containerd client, the
//! layout or the CNI runner itself.

use std::collections::HashSet;
use std::time::Duration;

use outpost_api::{AppConfig, NetworkConfig};

use crate::app::{Runtime, TaskIo};
use crate::error::Result;
use crate::net::{self, NetError};
use crate::observe::ObservedApp;

impl Runtime {
    /// The containerd version (a liveness check).
    pub async fn version(&self) -> Result<String> {
        self.client().version().await
    }

    /// Where the CNI plugins are looked for.
    pub fn cni_dir(&self) -> &std::path::Path {
        self.cni().path()
    }

    /// Whether image `reference` is in the image store.
    pub async fn image_present(&self, reference: &str) -> Result<bool> {
        match crate::image::resolve(self.client(), reference).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a VNC password is in effect for `app` (config, else the
    /// image's `org.lfedge.eve.vnc_password` label); `None` while its image
    /// is not there.
    pub async fn vnc_password_set(&self, app: &AppConfig) -> Option<bool> {
        if app.vnc.password.is_some() {
            return Some(true);
        }
        let img = crate::image::resolve(self.client(), &app.image)
            .await
            .ok()?;
        Some(crate::spec::vnc_password(app, &img.config).is_some())
    }

    /// A new task on `observed`'s container, its interfaces made again
    /// first if their namespace is gone (after a reboot).
    pub async fn reattach_and_restart(&self, observed: &ObservedApp, io: &TaskIo) -> Result<u32> {
        net::reattach(self.layout(), self.cni(), &observed.task_id).await?;
        self.restart_task(observed, io).await
    }

    /// UUIDs of the network instances this runtime set up.
    pub fn owned_networks(&self) -> std::result::Result<Vec<String>, NetError> {
        Ok(net::owned(self.layout())?
            .into_iter()
            .map(|o| o.network.uuid)
            .collect())
    }

    /// Attachment records: task ID and the networks it is on.
    pub fn attachments(&self) -> std::result::Result<Vec<(String, Vec<String>)>, NetError> {
        Ok(net::records(self.layout())?
            .iter()
            .map(|r| (r.task.clone(), r.networks()))
            .collect())
    }

    /// Whether instance `n` looks fully set up.
    pub fn network_complete(&self, n: &NetworkConfig) -> bool {
        net::instance::looks_complete(self.layout(), n)
    }

    /// Sets up or repairs instance `n`; true if anything changed.
    pub async fn ensure_network(&self, n: &NetworkConfig) -> std::result::Result<bool, NetError> {
        net::ensure_network(self.layout(), n).await
    }

    /// Removes instance `uuid`.
    pub async fn remove_network(&self, uuid: &str) -> std::result::Result<(), NetError> {
        net::remove_network(self.layout(), uuid).await
    }

    /// Frees the attachment of task `task_id` (its interfaces and addresses).
    pub async fn free_attachment(&self, task_id: &str) -> std::result::Result<(), NetError> {
        net::detach_app(self.layout(), self.cni(), task_id).await
    }

    /// Deletes images not in `keep` older than `grace`; returns their names.
    pub async fn collect_images(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
    ) -> Result<Vec<String>> {
        crate::pull::gc::collect_images(self.client(), keep, grace).await
    }
}
