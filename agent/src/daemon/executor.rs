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

use super::downloads::Request;
use super::state::Shared;
use super::{images, logs};

/// What the executor needs besides the action.
pub struct Executor {
    /// Shared state (runtime, layout, memlogd, downloads).
    pub shared: Arc<Shared>,
    /// Local OCI layouts to import images from.
    pub images: Option<PathBuf>,
}

/// What carrying out an action came to, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executed {
    /// Done: the world changed as planned.
    Done,
    /// Nothing was done: the app's image is being downloaded (the loop is
    /// woken when it is there or has failed). Not a failure, not a change.
    WaitingForImage,
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
        Executor { shared, images }
    }

    /// Whether the image app `uuid` is built from is in the user containerd.
    /// If not, its download is started (or joined) in the background and
    /// this returns `false` at once; a failed download is returned as an
    /// error carrying a [`Failure`](super::downloads::Failure).
    async fn image_ready(&self, uuid: &str, view: &PassView) -> Result<bool> {
        let app = view
            .desired
            .get(uuid)
            .with_context(|| format!("app {uuid} is not in the config"))?;
        let reference = app.image.clone();
        match outpost_runtime::image::resolve(self.shared.runtime.client(), &reference).await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(e).with_context(|| format!("looking up image {reference}"));
            }
        }
        let (shared, local, registries) = (
            self.shared.clone(),
            self.images.clone(),
            view.registries.clone(),
        );
        let r = reference.clone();
        let fetch = move |progress| async move {
            images::ensure_with(
                &shared.runtime,
                local.as_deref(),
                &r,
                &registries,
                Some(progress),
            )
            .await
            .map(|_| ())
            .map_err(|e| images::failure(&r, &e))
        };
        let shared = self.shared.clone();
        let wake = move || shared.kick.notify_one();
        match self.shared.downloads.request(&reference, uuid, fetch, wake) {
            Request::Waiting => Ok(false),
            Request::Failed(f) => Err(f.into()),
        }
    }

    /// Carries out `action`. Actions that build a container first make
    /// sure its image is there: while it downloads they return
    /// [`Executed::WaitingForImage`] without touching the old container, so
    /// an app keeps running its old version until the new image is in.
    pub async fn execute(&self, action: &Action, view: &PassView) -> Result<Executed> {
        if let Action::Create { uuid } | Action::Replace { uuid, .. } | Action::Purge { uuid, .. } =
            action
        {
            if !self.image_ready(uuid, view).await? {
                return Ok(Executed::WaitingForImage);
            }
        }
        self.carry_out(action, view).await?;
        Ok(Executed::Done)
    }

    async fn carry_out(&self, action: &Action, view: &PassView) -> Result<()> {
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
