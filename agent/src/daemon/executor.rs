//! Carries out the planner's actions through the runtime. Every action is
//! idempotent (the runtime's steps reuse what exists), so an agent killed
//! in the middle is repaired by the next pass.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use outpost_api::AppConfig;
use outpost_reconcile::Action;
use outpost_runtime::{volume, ObservedApp};

use super::state::Shared;
use super::{images, logs};

/// What the executor needs besides the action.
pub struct Executor {
    /// Shared state (runtime, layout, memlogd).
    pub shared: Arc<Shared>,
    /// Local OCI layouts to import images from.
    pub images: Option<PathBuf>,
    /// One lock per image reference: apps sharing an image fetch it once,
    /// the others wait for it instead of racing on the same blobs.
    image_locks: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Inputs of one pass, shared by its concurrent actions.
pub struct PassView {
    /// Configs to build containers from (the planner's choice), by UUID.
    pub desired: BTreeMap<String, AppConfig>,
    /// Containers found, by task ID.
    pub observed: BTreeMap<String, ObservedApp>,
    /// Configs last acted on, by UUID (to find volumes of removed apps).
    pub applied: BTreeMap<String, AppConfig>,
    /// Config generation in effect.
    pub generation: u64,
    /// Registry settings of the config in effect.
    pub registries: Vec<outpost_api::RegistryConfig>,
    /// Network instances of the config in effect.
    pub networks: Vec<outpost_api::NetworkConfig>,
}

impl Executor {
    /// An executor over `shared`, importing missing images from `images`.
    pub fn new(shared: Arc<Shared>, images: Option<PathBuf>) -> Self {
        Executor {
            shared,
            images,
            image_locks: Default::default(),
        }
    }

    async fn ensure_image(&self, reference: &str, view: &PassView) -> Result<()> {
        let lock = {
            let mut locks = self.image_locks.lock().unwrap();
            // Bounded by the number of distinct images in the config.
            if locks.len() > 1024 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry(reference.to_owned()).or_default().clone()
        };
        let _held = lock.lock().await;
        // Progress is visible in status (DOWNLOADING) while the pull runs.
        let (tx, rx) = tokio::sync::watch::channel(Default::default());
        self.shared
            .downloads
            .lock()
            .unwrap()
            .insert(reference.to_owned(), rx);
        let r = images::ensure_with(
            &self.shared.runtime,
            self.images.as_deref(),
            reference,
            &view.registries,
            Some(tx),
        )
        .await;
        self.shared.downloads.lock().unwrap().remove(reference);
        r.map(|_| ())
    }

    /// Carries out `action`.
    pub async fn execute(&self, action: &Action, view: &PassView) -> Result<()> {
        let rt = &self.shared.runtime;
        match action {
            Action::Create { uuid } => self.create(uuid, view).await,
            Action::Start { task_id, .. } => {
                rt.start(task_id).await?;
                Ok(())
            }
            Action::Restart { task_id, .. } => {
                let obs = view
                    .observed
                    .get(task_id)
                    .with_context(|| format!("task {task_id} vanished"))?;
                // After a reboot the namespace the container's spec names is
                // gone: make its interfaces again from the attachment record.
                outpost_runtime::net::reattach(rt.layout(), rt.cni(), task_id)
                    .await
                    .with_context(|| format!("re-creating the interfaces of task {task_id}"))?;
                let io = logs::task_io(&self.shared.memlogd, &self.shared.layout, task_id).await;
                rt.restart_task(obs, &io).await?;
                Ok(())
            }
            Action::Halt { task_id, .. } => {
                if let Some(obs) = view.observed.get(task_id) {
                    rt.remove_container(obs).await?;
                }
                Ok(())
            }
            Action::Replace { uuid, old_task_id } => {
                // Removing the container removes its FIFOs; the new task's
                // are made and attached afresh, also under the same task ID.
                if let Some(obs) = view.observed.get(old_task_id) {
                    rt.remove_container(obs).await?;
                }
                self.create(uuid, view).await
            }
            Action::Purge {
                uuid,
                task_id,
                old_purge_counter,
            } => {
                if let Some(obs) = task_id.as_ref().and_then(|t| view.observed.get(t)) {
                    rt.remove_container(obs).await?;
                }
                self.remove_volumes(uuid, *old_purge_counter, view).await?;
                self.create(uuid, view).await
            }
            Action::Remove {
                uuid,
                task_id,
                purge_counter,
            } => {
                if let Some(obs) = view.observed.get(task_id) {
                    rt.remove_container(obs).await?;
                }
                self.remove_volumes(uuid, *purge_counter, view).await?;
                // The app is gone: every generation of its container volume goes.
                for dir in container_volumes_of(&self.shared.layout.volumes(), uuid) {
                    rt.remove_volume(&dir).await?;
                }
                // Every task's FIFOs went with its container; this also
                // catches those of tasks whose container is already gone.
                logs::remove_app_io(&self.shared.layout, uuid)
                    .with_context(|| format!("removing the log FIFOs of app {uuid}"))?;
                Ok(())
            }
        }
    }

    async fn create(&self, uuid: &str, view: &PassView) -> Result<()> {
        let app = view
            .desired
            .get(uuid)
            .with_context(|| format!("app {uuid} is not in the config"))?;
        let rt = &self.shared.runtime;
        self.ensure_image(&app.image, view).await?;
        let id = app.task_id();
        let io = logs::task_io(&self.shared.memlogd, &self.shared.layout, &id).await;
        rt.create_app_with_networks(app, &view.networks, view.generation, &io)
            .await
            .with_context(|| format!("creating app {} ({uuid})", app.display_name))?;
        match rt.state(&id).await? {
            Some(s) if s.status == outpost_runtime::task::TaskStatus::Created => {
                rt.start(&id)
                    .await
                    .with_context(|| format!("starting app {} ({uuid})", app.display_name))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Removes the container volume of generation `purge_counter` and the
    /// app's data volumes (as last applied).
    async fn remove_volumes(&self, uuid: &str, purge_counter: u64, view: &PassView) -> Result<()> {
        let rt = &self.shared.runtime;
        let dir = volume::container_volume_dir(&self.shared.layout.volumes(), uuid, purge_counter);
        rt.remove_volume(&dir).await?;
        if let Some(app) = view.applied.get(uuid).or_else(|| view.desired.get(uuid)) {
            for v in rt.data_volumes(app) {
                rt.remove_data_volume(&v.host_dir)?;
            }
        }
        Ok(())
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
