//! What exists in the user containerd, rebuilt from labels: after a crash
//! the agent learns its apps from here, not from memory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::ListContainersRequest;

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};
use crate::labels;
use crate::task::{self, TaskState};

/// One app container found in containerd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedApp {
    /// Container/task ID `<uuid>.<version>.<app_num>`.
    pub task_id: String,
    /// App UUID.
    pub app_uuid: String,
    /// Config version the container was created for.
    pub version: String,
    /// App number.
    pub app_num: u32,
    /// Device config generation that created it.
    pub config_generation: u64,
    /// Container volume directory.
    pub volume_dir: PathBuf,
    /// Generation (purge counter) of the container volume, decoded from
    /// `volume_dir` (0 when it does not follow the `<uuid>#<gen>.container`
    /// layout).
    pub volume_generation: u64,
    /// Runtime class name.
    pub runtime: String,
    /// Image name.
    pub image: String,
    /// Stop signal.
    pub stop_signal: i32,
    /// Grace period before SIGKILL.
    pub stop_timeout: Duration,
    /// The task, if one exists.
    pub task: Option<TaskState>,
}

/// Every container the agent created in this namespace, with its task state.
pub async fn list_apps(c: &Containerd) -> Result<Vec<ObservedApp>> {
    let r = c
        .containers()
        .list(c.req(ListContainersRequest {
            filters: vec![format!("labels.\"{}\"", labels::APP)],
        }))
        .await
        .map_err(|s| RuntimeError::api("containers.List", c.namespace(), s))?;
    let mut out = Vec::new();
    for ct in r.into_inner().containers {
        let l = |k: &str| ct.labels.get(k).cloned().unwrap_or_default();
        let task = task::get(c, &ct.id).await?;
        out.push(ObservedApp {
            app_uuid: l(labels::APP),
            version: l(labels::VERSION),
            app_num: l(labels::APP_NUM).parse().unwrap_or(0),
            config_generation: l(labels::GENERATION).parse().unwrap_or(0),
            volume_generation: crate::volume::container_volume_generation(Path::new(&l(
                labels::VOLUME,
            )))
            .unwrap_or(0),
            volume_dir: PathBuf::from(l(labels::VOLUME)),
            runtime: l(labels::RUNTIME),
            image: ct.image.clone(),
            stop_signal: l(labels::STOP_SIGNAL).parse().unwrap_or(libc::SIGTERM),
            stop_timeout: Duration::from_millis(
                l(labels::STOP_TIMEOUT_MS).parse().unwrap_or(10_000),
            ),
            task_id: ct.id,
            task,
        });
    }
    out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    Ok(out)
}
