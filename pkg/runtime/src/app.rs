//! The app-level driver the agent uses: one call per lifecycle step, each
//! idempotent so a crash between two steps is repaired by running it again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use containerd_client::services::v1::GetContainerRequest;
use outpost_api::{AppConfig, NetworkConfig, RuntimeClass};

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};
use crate::image::{self, ImageRecord};
use crate::labels;
use crate::layout::Layout;
use crate::lease::Lease;
use crate::net::{self, Cni};
use crate::observe::{self, ObservedApp};
use crate::runsc;
use crate::spec::{self, DataVolume, NetworkSpec, SpecInput};
use crate::task::{
    self, ContainerRequest, ExecOutput, RuncOptions, StopOutcome, TaskMetrics, TaskState,
    TaskStatus,
};
use crate::volume;

pub use crate::task_io::TaskIo;

/// What [`Runtime::create_app`] set up.
#[derive(Clone, Debug)]
pub struct CreatedApp {
    /// Container/task ID.
    pub task_id: String,
    /// Container volume directory.
    pub volume_dir: PathBuf,
    /// Init PID of the created (not yet started) task.
    pub pid: u32,
    /// Whether a VNC password is in effect (never the password).
    pub vnc_password_set: bool,
    /// The task's status: `Created` when this call made it, whatever it was
    /// when the task already existed (the call is idempotent).
    pub status: TaskStatus,
}

/// Drives apps in the user containerd.
#[derive(Clone, Debug)]
pub struct Runtime {
    c: Containerd,
    layout: Layout,
    /// The runsc wrapper script, written on first use by a runsc app.
    runsc_wrapper: Arc<OnceLock<PathBuf>>,
    cni: Cni,
}

impl Runtime {
    /// A runtime over `c` (the user instance, namespace `eve-user-apps`).
    /// Touches nothing: the runsc wrapper is written when the first runsc
    /// app needs it.
    pub fn new(c: Containerd, layout: Layout) -> Runtime {
        Runtime {
            c,
            layout,
            runsc_wrapper: Arc::default(),
            cni: Cni::default(),
        }
    }

    /// The runsc wrapper, written on first use.
    fn runsc_wrapper(&self) -> Result<&PathBuf> {
        if let Some(p) = self.runsc_wrapper.get() {
            return Ok(p);
        }
        let bin = runsc::find_runsc().ok_or_else(|| {
            RuntimeError::Instance(
                "runtime class runsc requested but runsc is not installed".into(),
            )
        })?;
        let written = runsc::write_wrapper(&self.layout.helper_bin(), &bin)?;
        Ok(self.runsc_wrapper.get_or_init(|| written))
    }

    /// Uses the CNI plugins in `cni` instead of `/usr/lib/cni`.
    pub fn with_cni(mut self, cni: Cni) -> Runtime {
        self.cni = cni;
        self
    }

    /// The CNI plugin runner.
    pub fn cni(&self) -> &Cni {
        &self.cni
    }

    /// The containerd handle.
    pub fn client(&self) -> &Containerd {
        &self.c
    }

    /// The path layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Container volume directory of `app` at its current purge counter.
    pub fn volume_dir(&self, app: &AppConfig) -> PathBuf {
        volume::container_volume_dir(&self.layout.volumes(), &app.uuid, app.purge_counter)
    }

    /// Data volume directories of `app`.
    pub fn data_volumes(&self, app: &AppConfig) -> Vec<DataVolume> {
        app.volumes
            .iter()
            .map(|v| DataVolume {
                host_dir: volume::data_volume_dir(&self.layout.volumes(), &v.uuid, v.generation),
                mount: v.clone(),
            })
            .collect()
    }

    /// Shim options for a runtime class.
    pub fn runc_options(&self, class: RuntimeClass) -> Result<RuncOptions> {
        Ok(match class {
            RuntimeClass::Runc => RuncOptions {
                binary_name: "runc".into(),
                root: self.layout.runc_root().display().to_string(),
                ..Default::default()
            },
            RuntimeClass::Runsc => RuncOptions {
                binary_name: self.runsc_wrapper()?.display().to_string(),
                root: self.layout.runsc_root().display().to_string(),
                ..Default::default()
            },
        })
    }

    /// Imports an OCI image layout directory as image `name`.
    pub async fn import_layout(&self, dir: &Path, name: &str) -> Result<ImageRecord> {
        image::import_layout(&self.c, dir, name).await
    }

    /// Creates everything an app needs up to a created task: container volume
    /// with its writable snapshot mounted, data volumes, runtime spec,
    /// container record, task. Existing pieces are reused, so a crash
    /// half-way is repaired by calling it again. For an app with
    /// `interfaces` use [`Runtime::create_app_with_networks`].
    pub async fn create_app(
        &self,
        app: &AppConfig,
        config_generation: u64,
        io: &TaskIo,
    ) -> Result<CreatedApp> {
        self.create_app_with_networks(app, &[], config_generation, io)
            .await
    }

    /// [`Runtime::create_app`] for an app whose `interfaces` attach to
    /// `networks`: its task gets a network namespace of its own with one
    /// CNI-made interface per entry (`eth0`, …), plus generated
    /// `/etc/resolv.conf` and `/etc/hosts`.
    pub async fn create_app_with_networks(
        &self,
        app: &AppConfig,
        networks: &[NetworkConfig],
        config_generation: u64,
        io: &TaskIo,
    ) -> Result<CreatedApp> {
        let id = app.task_id();
        let img = image::resolve(&self.c, &app.image).await?;
        let dir = self.volume_dir(app);
        let vnc_password_set = spec::vnc_password(app, &img.config).is_some();
        let options = self.runc_options(app.runtime)?;

        if let Some(state) = task::get(&self.c, &id).await? {
            return Ok(CreatedApp {
                task_id: id,
                volume_dir: dir,
                pid: state.pid,
                vnc_password_set,
                status: state.status,
            });
        }
        let mut owner = HashMap::new();
        owner.insert(labels::APP.to_owned(), app.uuid.clone());
        owner.insert(labels::VERSION.to_owned(), app.version.clone());
        owner.insert(labels::APP_NUM.to_owned(), app.app_num.to_string());
        owner.insert(labels::GENERATION.to_owned(), config_generation.to_string());

        // Hold a lease from snapshot prepare to container create (an active
        // snapshot can otherwise be collected in between).
        let lease = Lease::create(&self.c, "create").await?;
        let made = async {
            let key = volume::prepare(
                &self.c,
                lease.id(),
                &dir,
                &img.config,
                &img.chain_id,
                &owner,
            )
            .await?;
            let rootfs = volume::mount_rootfs(&self.c, &dir).await?;
            let data = self.data_volumes(app);
            for v in &data {
                std::fs::create_dir_all(&v.host_dir)
                    .map_err(|e| RuntimeError::io("creating data volume", &v.host_dir, e))?;
            }
            let network = net::attach_app(&self.layout, &self.cni, app, networks)
                .await?
                .map(|n| NetworkSpec {
                    netns: n.netns,
                    resolv_conf: n.resolv_conf,
                    hosts: n.hosts,
                });
            if !self.container_exists(&id).await? {
                let spec = spec::build_spec(SpecInput {
                    app,
                    image: &img.config,
                    rootfs: &rootfs,
                    volumes: &data,
                    network: network.as_ref(),
                })?;
                let mut l = owner.clone();
                l.insert(labels::VOLUME.to_owned(), dir.display().to_string());
                l.insert(labels::RUNTIME.to_owned(), app.runtime.as_str().to_owned());
                l.insert(labels::NAME.to_owned(), app.display_name.clone());
                l.insert(
                    labels::STOP_SIGNAL.to_owned(),
                    spec::stop_signal(&img.config).to_string(),
                );
                l.insert(
                    labels::STOP_TIMEOUT_MS.to_owned(),
                    app.stop_timeout.as_millis().to_string(),
                );
                let req = ContainerRequest {
                    id: &id,
                    image: &img.name,
                    snapshot_key: &key,
                    labels: l,
                    spec: &spec,
                    options: options.clone(),
                };
                task::create_container(&self.c, Some(lease.id()), req).await?;
            }
            Ok::<_, RuntimeError>(())
        }
        .await;
        let released = lease.delete(&self.c).await;
        made?;
        released?;
        let pid = self.create_task(&id, io, &options).await?;
        Ok(CreatedApp {
            task_id: id,
            volume_dir: dir,
            pid,
            vnc_password_set,
            status: TaskStatus::Created,
        })
    }

    /// Task create that survives the leftovers of an agent killed during an
    /// earlier create of the same task ([`task::repair`]): a bundle or shim
    /// of the ID is repaired first (no task exists here, so they are stale),
    /// and when containerd still refuses with the stale-bundle error (its
    /// own roll-back racing this create) the repair runs again and the
    /// create is tried once more.
    async fn create_task(&self, id: &str, io: &TaskIo, options: &RuncOptions) -> Result<u32> {
        if task::repair::has_leftovers(&self.c, &self.layout, id) {
            match task::repair::repair_task(&self.c, &self.layout, id).await {
                Ok(r) if !r.is_empty() => {
                    tracing::info!(task = id, repaired = ?r, "stale task state repaired before create")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(task = id, error = %e, "repairing stale task state"),
            }
        }
        match task::create_task(&self.c, id, &io.stdout, &io.stderr, options).await {
            Err(e) if task::repair::is_stale_bundle(&e) => {
                tracing::warn!(task = id, error = %e, "task create found a stale bundle; repairing");
                match task::repair::repair_task(&self.c, &self.layout, id).await {
                    Ok(r) => tracing::info!(task = id, repaired = ?r, "stale task state repaired"),
                    Err(r) => {
                        tracing::error!(task = id, error = %r, "repairing the stale task failed");
                        return Err(e);
                    }
                }
                task::create_task(&self.c, id, &io.stdout, &io.stderr, options).await
            }
            r => r,
        }
    }

    async fn container_exists(&self, id: &str) -> Result<bool> {
        match self
            .c
            .containers()
            .get(self.c.req(GetContainerRequest { id: id.to_owned() }))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(RuntimeError::api("containers.Get", id, s)),
        }
    }

    /// Starts a created task; returns its PID.
    pub async fn start(&self, task_id: &str) -> Result<u32> {
        task::start(&self.c, task_id, "").await
    }

    /// Replaces an exited task by a new one on the same container and volume
    /// (a restart keeps the app's data) and starts it.
    pub async fn restart_task(&self, observed: &ObservedApp, io: &TaskIo) -> Result<u32> {
        let id = &observed.task_id;
        self.stop(observed).await?;
        task::delete_task(&self.c, id).await?;
        volume::mount_rootfs(&self.c, &observed.volume_dir).await?;
        let class = match observed.runtime.as_str() {
            "runsc" => RuntimeClass::Runsc,
            _ => RuntimeClass::Runc,
        };
        self.create_task(id, io, &self.runc_options(class)?).await?;
        task::start(&self.c, id, "").await
    }

    /// Graceful stop with the container's stop signal and grace period.
    pub async fn stop(&self, observed: &ObservedApp) -> Result<StopOutcome> {
        task::stop(
            &self.c,
            &observed.task_id,
            observed.stop_signal,
            observed.stop_timeout,
        )
        .await
    }

    /// Stops (gracefully), then deletes the task, its log FIFOs (memlogd
    /// drains and releases them) and the container, runs CNI DEL for its
    /// interfaces and removes its network namespace, and unmounts the
    /// rootfs. The volume and its snapshot are kept (activate false,
    /// restart, new version). Every way a task goes away passes here, so no
    /// FIFO outlives its task; the FIFOs go before the container, so a crash
    /// in between is repaired by removing the container again.
    pub async fn remove_container(&self, observed: &ObservedApp) -> Result<()> {
        let id = &observed.task_id;
        if let Err(e) = self.stop(observed).await {
            tracing::warn!(task = %id, error = %e, "graceful stop failed; forcing");
        }
        self.force_delete_task(observed).await?;
        memlogd::remove_task_logs(&self.layout.fifos(), id).map_err(|e| match e {
            memlogd::Error::RemoveFifo { path, source } => {
                RuntimeError::io("removing log FIFO", path, source)
            }
            other => RuntimeError::Instance(format!("removing log FIFOs of task {id}: {other}")),
        })?;
        task::delete_container(&self.c, id).await?;
        net::detach_app(&self.layout, &self.cni, id).await?;
        volume::unmount_rootfs(&observed.volume_dir)
    }

    /// Frees the network attachment of a task that no longer has a
    /// container (a crash between CNI ADD and container create leaves one).
    pub async fn detach_network(&self, task_id: &str) -> Result<()> {
        Ok(net::detach_app(&self.layout, &self.cni, task_id).await?)
    }

    /// The IPv4 addresses of a task's interfaces, `(network UUID, address)`.
    pub fn app_ips(&self, task_id: &str) -> Result<Vec<(String, std::net::Ipv4Addr)>> {
        let rec = net::read_record(&self.layout, task_id)?;
        Ok(rec
            .map(|r| {
                r.interfaces
                    .iter()
                    .flat_map(|i| i.ips().into_iter().map(|ip| (i.network.clone(), ip)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes a task whatever its state, including a runsc sandbox stuck in
    /// `created` whose kill fails through the task API.
    async fn force_delete_task(&self, observed: &ObservedApp) -> Result<()> {
        let id = &observed.task_id;
        match task::delete_task(&self.c, id).await {
            Ok(_) => Ok(()),
            Err(first) => {
                let _ = task::kill(&self.c, id, libc::SIGKILL, true).await;
                if observed.runtime == "runsc" {
                    let root = self.layout.runsc_root().join(self.c.namespace());
                    if let Some(bin) = runsc::find_runsc() {
                        let _ = tokio::process::Command::new(bin)
                            .arg("--root")
                            .arg(&root)
                            .args(["delete", "--force", id])
                            .output()
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                task::delete_task(&self.c, id)
                    .await
                    .map(|_| ())
                    .map_err(|_| first)
            }
        }
    }

    /// Removes a container volume (its snapshot and directory).
    pub async fn remove_volume(&self, dir: &Path) -> Result<()> {
        volume::remove(&self.c, dir).await
    }

    /// Removes a data volume directory.
    pub fn remove_data_volume(&self, dir: &Path) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("removing data volume", dir, e)),
        }
    }

    /// Every app container with its task state.
    pub async fn list(&self) -> Result<Vec<ObservedApp>> {
        observe::list_apps(&self.c).await
    }

    /// One app container by task ID.
    pub async fn find(&self, task_id: &str) -> Result<Option<ObservedApp>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|a| a.task_id == task_id))
    }

    /// The task state.
    pub async fn state(&self, task_id: &str) -> Result<Option<TaskState>> {
        task::get(&self.c, task_id).await
    }

    /// Freezes the task.
    pub async fn pause(&self, task_id: &str) -> Result<()> {
        task::pause(&self.c, task_id).await
    }

    /// Thaws the task.
    pub async fn resume(&self, task_id: &str) -> Result<()> {
        task::resume(&self.c, task_id).await
    }

    /// Runs a command in the task.
    pub async fn exec(
        &self,
        task_id: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        task::exec(
            &self.c,
            task_id,
            args,
            &self.layout.user_state().join("exec"),
            timeout,
        )
        .await
    }

    /// Memory and CPU use of the task.
    pub async fn metrics(&self, task_id: &str) -> Result<TaskMetrics> {
        task::metrics(&self.c, task_id).await
    }
}
