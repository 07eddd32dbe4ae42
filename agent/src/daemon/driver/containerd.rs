//! [`Driver`] over the user containerd ([`Runtime`]), CNI and memlogd.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use outpost_api::{AppConfig, NetworkConfig, RegistryConfig};
use outpost_reconcile::{Build, Observed, Phase};
use outpost_runtime::pull::PullProgress;
use outpost_runtime::task::TaskStatus;
use outpost_runtime::{volume, ObservedApp, Runtime};
use tokio::sync::watch;

use super::{Driver, DriverError, DriverResult, Fetch, Found, NetworkState};
use crate::daemon::snapshot::MemlogdPaths;
use crate::daemon::{images, logs};

/// The real driver.
#[derive(Clone, Debug)]
pub struct ContainerdDriver {
    rt: Runtime,
    memlogd: MemlogdPaths,
    /// Local OCI layouts to import short-name images from.
    images: Option<PathBuf>,
}

impl ContainerdDriver {
    /// A driver over `rt`, attaching task output to `memlogd` and importing
    /// short-name images from `images`.
    pub fn new(rt: Runtime, memlogd: MemlogdPaths, images: Option<PathBuf>) -> Self {
        ContainerdDriver {
            rt,
            memlogd,
            images,
        }
    }

    /// The runtime (for the admin API's exec and metrics).
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    async fn find(&self, task_id: &str) -> DriverResult<Option<ObservedApp>> {
        self.rt
            .find(task_id)
            .await
            .map_err(|e| DriverError::transient(format!("looking up task {task_id}"), e))
    }
}

/// The planner's view of a container found in containerd.
pub fn to_observed(o: &ObservedApp) -> Observed {
    let (phase, exit_status, pid) = match &o.task {
        None => (Phase::NoTask, None, None),
        Some(t) => {
            let phase = match t.status {
                TaskStatus::Created => Phase::Created,
                TaskStatus::Running => Phase::Running,
                TaskStatus::Pausing => Phase::Pausing,
                TaskStatus::Paused => Phase::Paused,
                TaskStatus::Stopped => Phase::Stopped,
                TaskStatus::Unknown => Phase::NoTask,
            };
            let exit = (t.status == TaskStatus::Stopped).then_some(t.exit_status);
            (phase, exit, (t.pid > 0).then_some(t.pid))
        }
    };
    Observed {
        task_id: o.task_id.clone(),
        uuid: o.app_uuid.clone(),
        version: o.version.clone(),
        app_num: o.app_num,
        purge_counter: o.volume_generation,
        phase,
        exit_status,
        pid,
    }
}

impl Driver for ContainerdDriver {
    async fn observe(&self) -> DriverResult<Vec<Found>> {
        let found = self
            .rt
            .list()
            .await
            .map_err(|e| DriverError::transient("listing the app containers", e))?;
        Ok(found
            .iter()
            .map(|o| Found {
                app: to_observed(o),
                runtime: o.runtime.clone(),
                ips: self.rt.app_ips(&o.task_id).unwrap_or_default(),
            })
            .collect())
    }

    async fn image_present(&self, reference: &str) -> DriverResult<bool> {
        self.rt
            .image_present(reference)
            .await
            .map_err(|e| DriverError::transient(format!("looking up image {reference}"), e))
    }

    fn fetch_image(
        &self,
        reference: String,
        registries: Vec<RegistryConfig>,
        progress: watch::Sender<PullProgress>,
    ) -> Fetch {
        let (rt, local) = (self.rt.clone(), self.images.clone());
        Box::pin(async move {
            images::ensure_with(
                &rt,
                local.as_deref(),
                &reference,
                &registries,
                Some(progress),
            )
            .await
            .map(|_| ())
            .map_err(|e| images::failure(&reference, &e))
        })
    }

    async fn image_sets_vnc(&self, app: &AppConfig) -> Option<bool> {
        self.rt.vnc_password_set(app).await
    }

    async fn create(&self, build: &Build) -> DriverResult<()> {
        let app = &build.app;
        let who = format!("app {} ({})", app.display_name, app.uuid);
        let id = app.task_id();
        let io = logs::task_io(&self.memlogd, self.rt.layout(), &id).await;
        let made = self
            .rt
            .create_app_with_networks(app, &build.networks, build.config_generation, &io)
            .await
            .map_err(|e| DriverError::transient(format!("creating {who}"), format!("{e:#}")))?;
        if made.status == TaskStatus::Created {
            self.rt
                .start(&id)
                .await
                .map_err(|e| DriverError::transient(format!("starting {who}"), e))?;
        }
        Ok(())
    }

    async fn start(&self, task_id: &str) -> DriverResult<()> {
        self.rt
            .start(task_id)
            .await
            .map(|_| ())
            .map_err(|e| DriverError::transient(format!("starting task {task_id}"), e))
    }

    async fn restart(&self, task_id: &str) -> DriverResult<()> {
        let obs = self.find(task_id).await?.ok_or_else(|| {
            DriverError::transient(
                format!("restarting task {task_id}"),
                "the container vanished",
            )
        })?;
        let io = logs::task_io(&self.memlogd, self.rt.layout(), task_id).await;
        self.rt
            .reattach_and_restart(&obs, &io)
            .await
            .map(|_| ())
            .map_err(|e| DriverError::transient(format!("restarting task {task_id}"), e))
    }

    async fn pause(&self, task_id: &str) -> DriverResult<()> {
        self.rt
            .pause(task_id)
            .await
            .map_err(|e| DriverError::transient(format!("pausing task {task_id}"), e))
    }

    async fn resume(&self, task_id: &str) -> DriverResult<()> {
        self.rt
            .resume(task_id)
            .await
            .map_err(|e| DriverError::transient(format!("resuming task {task_id}"), e))
    }

    async fn remove_container(&self, task_id: &str) -> DriverResult<()> {
        let Some(obs) = self.find(task_id).await? else {
            return Ok(());
        };
        self.rt
            .remove_container(&obs)
            .await
            .map_err(|e| DriverError::transient(format!("removing container {task_id}"), e))
    }

    async fn remove_volumes(
        &self,
        uuid: &str,
        generation: u64,
        data: Option<&AppConfig>,
    ) -> DriverResult<()> {
        let dir = volume::container_volume_dir(&self.rt.layout().volumes(), uuid, generation);
        self.rt
            .remove_volume(&dir)
            .await
            .map_err(|e| DriverError::transient(format!("removing volume {}", dir.display()), e))?;
        for v in data.map(|a| self.rt.data_volumes(a)).unwrap_or_default() {
            self.rt.remove_data_volume(&v.host_dir).map_err(|e| {
                DriverError::transient(format!("removing volume {}", v.host_dir.display()), e)
            })?;
        }
        Ok(())
    }

    async fn remove_leftovers(&self, uuid: &str) -> DriverResult<()> {
        let layout = self.rt.layout();
        for dir in container_volumes_of(&layout.volumes(), uuid) {
            self.rt.remove_volume(&dir).await.map_err(|e| {
                DriverError::transient(format!("removing volume {}", dir.display()), e)
            })?;
        }
        // Every task's FIFOs went with its container; this also catches
        // those of tasks whose container is already gone.
        logs::remove_app_io(layout, uuid)
            .map_err(|e| DriverError::transient(format!("removing the log FIFOs of app {uuid}"), e))
    }

    async fn networks(&self) -> DriverResult<NetworkState> {
        let err = |e| DriverError::transient("reading the network state", e);
        Ok(NetworkState {
            owned: self.rt.owned_networks().map_err(err)?,
            attachments: self.rt.attachments().map_err(err)?,
        })
    }

    fn network_complete(&self, n: &NetworkConfig) -> bool {
        self.rt.network_complete(n)
    }

    async fn ensure_network(&self, n: &NetworkConfig) -> DriverResult<bool> {
        self.rt.ensure_network(n).await.map_err(|e| {
            DriverError::transient(format!("setting up network {} ({})", n.name, n.uuid), e)
        })
    }

    async fn remove_network(&self, uuid: &str) -> DriverResult<()> {
        self.rt
            .remove_network(uuid)
            .await
            .map_err(|e| DriverError::transient(format!("removing network {uuid}"), e))
    }

    async fn detach(&self, task_id: &str) -> DriverResult<()> {
        self.rt.free_attachment(task_id).await.map_err(|e| {
            DriverError::transient(format!("freeing the network attachment of {task_id}"), e)
        })
    }

    async fn collect_images(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
    ) -> DriverResult<Vec<String>> {
        self.rt
            .collect_images(keep, grace)
            .await
            .map_err(|e| DriverError::transient("collecting unused images", e))
    }
}

/// Every container volume directory of app `uuid` (`<uuid>#<gen>.container`).
pub fn container_volumes_of(volumes: &std::path::Path, uuid: &str) -> Vec<PathBuf> {
    let prefix = format!("{uuid}#");
    std::fs::read_dir(volumes)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".container")
        })
        .map(|e| e.path())
        .collect()
}
