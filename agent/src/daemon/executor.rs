//! Carries out the planner's jobs through a [`Driver`]. Every job is
//! idempotent (the driver's steps reuse what exists), so an agent killed in
//! the middle is repaired by the next pass. A job acts on its own data only
//! ([`Work`]): nothing is looked up again.

use std::sync::Arc;

use outpost_reconcile::{Job, Work};
use tokio::sync::Notify;
use tracing::Instrument;

use super::downloads::{Downloads, Request};
use super::driver::{ActionError, Driver};

/// What carrying out a job came to, when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Executed {
    /// Done: the world changed as planned.
    Done,
    /// Nothing was done: the app's image is being downloaded (the loop is
    /// woken when it is there or has failed). Not a failure, not a change.
    WaitingForImage,
}

/// What jobs run with: the driver, the download stage, and the loop's
/// wake-up for finished downloads.
pub struct Executor<D> {
    /// The runtime seam.
    pub driver: Arc<D>,
    /// The download stage.
    pub downloads: Arc<Downloads>,
    /// Notified when a download ends.
    pub wake: Arc<Notify>,
}

impl<D> Clone for Executor<D> {
    fn clone(&self) -> Self {
        Executor {
            driver: self.driver.clone(),
            downloads: self.downloads.clone(),
            wake: self.wake.clone(),
        }
    }
}

impl<D: Driver> Executor<D> {
    /// Carries out `job` inside a span naming the app, task and action. Jobs
    /// that build a container first make sure its image is there: while it
    /// downloads they return [`Executed::WaitingForImage`] without touching
    /// the old container, so an app keeps running its old version until the
    /// new image is in.
    pub async fn execute(&self, job: &Job) -> Result<Executed, ActionError> {
        let span = tracing::info_span!(
            "action",
            app = job.action.uuid(),
            task = job.action.task_id().unwrap_or("-"),
            action = job.action.kind().verb(),
        );
        async {
            if let Some(build) = job.build() {
                if !self.image_ready(job.action.uuid(), build).await? {
                    tracing::info!("waiting for its image");
                    return Ok(Executed::WaitingForImage);
                }
            }
            tracing::info!("executing");
            let r = self.carry_out(job.action.uuid(), &job.work).await;
            if let Err(e) = &r {
                tracing::warn!(error = %e, "action failed");
            }
            r.map(|()| Executed::Done)
        }
        .instrument(span)
        .await
    }

    /// Whether the image of `build` is in the runtime. If not, its download
    /// is started (or joined) in the background and this returns `false` at
    /// once; a failed download is returned as its [`Failure`](super::downloads::Failure).
    async fn image_ready(
        &self,
        uuid: &str,
        build: &outpost_reconcile::Build,
    ) -> Result<bool, ActionError> {
        let reference = build.app.image.clone();
        if self.driver.image_present(&reference).await? {
            return Ok(true);
        }
        let (driver, registries, r) = (
            self.driver.clone(),
            build.registries.clone(),
            reference.clone(),
        );
        let fetch = move |progress| driver.fetch_image(r, registries, progress);
        let wake = self.wake.clone();
        match self
            .downloads
            .request(&reference, uuid, fetch, move || wake.notify_one())
        {
            Request::Waiting => Ok(false),
            Request::Failed(f) => Err(f.into()),
        }
    }

    async fn carry_out(&self, uuid: &str, work: &Work) -> Result<(), ActionError> {
        let d = &*self.driver;
        match work {
            Work::Create { build } => d.create(build).await?,
            Work::Start { task_id } => d.start(task_id).await?,
            Work::Restart { task_id } => d.restart(task_id).await?,
            Work::Halt { task_id } => d.remove_container(task_id).await?,
            Work::Replace { old_task_id, build } => {
                // Removing the container removes its FIFOs; the new task's
                // are made and attached afresh, also under the same task ID.
                d.remove_container(old_task_id).await?;
                d.create(build).await?;
            }
            Work::Purge {
                old_task_id,
                old_volume_generation,
                old_data,
                build,
            } => {
                if let Some(t) = old_task_id {
                    d.remove_container(t).await?;
                }
                d.remove_volumes(uuid, *old_volume_generation, Some(old_data))
                    .await?;
                d.create(build).await?;
            }
            Work::Remove {
                task_id,
                volume_generation,
                data,
            } => {
                d.remove_container(task_id).await?;
                d.remove_volumes(uuid, *volume_generation, data.as_ref())
                    .await?;
                // The app is gone: every generation of its container volume
                // and every task's FIFOs go.
                d.remove_leftovers(uuid).await?;
            }
        }
        Ok(())
    }
}
