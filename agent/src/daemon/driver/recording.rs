//! A [`Driver`] double for the loop's table tests: an in-memory world of
//! containers, images and networks, a record of every call in order,
//! failures scripted per operation, and downloads that end when the test
//! says so.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use outpost_api::{AppConfig, NetworkConfig, RegistryConfig};
use outpost_reconcile::{Build, FailureClass, Observed, Phase};
use outpost_runtime::pull::{ErrorClass, PullProgress};
use tokio::sync::{oneshot, watch};

use super::{Driver, DriverError, DriverResult, Fetch, Found, NetworkState};
use crate::daemon::downloads::Failure;

/// One call the loop made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `create` of this task ID.
    Create(String),
    /// `start`.
    Start(String),
    /// `restart`.
    Restart(String),
    /// `remove_container`.
    RemoveContainer(String),
    /// `pause`.
    Pause(String),
    /// `resume`.
    Resume(String),
    /// `remove_volumes` of an app's generation.
    RemoveVolumes(String, u64),
    /// `remove_leftovers`.
    RemoveLeftovers(String),
    /// `fetch_image`.
    Fetch(String),
    /// `ensure_network` (only when it is not complete already).
    EnsureNetwork(String),
    /// `remove_network`.
    RemoveNetwork(String),
    /// `collect_images` with its keep set.
    CollectImages(BTreeSet<String>),
}

#[derive(Default)]
struct World {
    containers: BTreeMap<String, Observed>,
    images: BTreeSet<String>,
    networks: BTreeSet<String>,
    calls: Vec<Call>,
    /// Operation name + key (task ID or app UUID) → the failure to return once.
    failures: BTreeMap<(String, String), FailureClass>,
    downloads: BTreeMap<String, oneshot::Sender<Result<(), Failure>>>,
    next_pid: u32,
}

/// The double.
#[derive(Default)]
pub struct RecordingDriver {
    world: Mutex<World>,
}

impl RecordingDriver {
    /// A world where `images` are present.
    pub fn with_images(images: &[&str]) -> Self {
        let d = RecordingDriver::default();
        d.world.lock().unwrap().images = images.iter().map(|s| s.to_string()).collect();
        d
    }

    /// Every call so far, in order; clears the record.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.world.lock().unwrap().calls)
    }

    /// The task of `task_id` exits with `status`.
    pub fn exit(&self, task_id: &str, status: u32) {
        let mut w = self.world.lock().unwrap();
        let c = w.containers.get_mut(task_id).expect("no such container");
        c.phase = Phase::Stopped;
        c.exit_status = Some(status);
        c.pid = None;
    }

    /// Every container disappears (a reboot: no task survives).
    pub fn reboot(&self) {
        self.world.lock().unwrap().containers.clear();
    }

    /// The containers that exist, by task ID.
    pub fn containers(&self) -> BTreeMap<String, Observed> {
        self.world.lock().unwrap().containers.clone()
    }

    /// The next `op` (`create`, `restart`, …) on `key` (app UUID for
    /// create, task ID otherwise) fails with `class`.
    pub fn fail_next(&self, op: &str, key: &str, class: FailureClass) {
        self.world
            .lock()
            .unwrap()
            .failures
            .insert((op.to_owned(), key.to_owned()), class);
    }

    /// Ends the download of `image` (it is then present on success).
    pub fn finish_download(&self, image: &str, result: Result<(), Failure>) {
        let tx = self.world.lock().unwrap().downloads.remove(image);
        if result.is_ok() {
            self.world.lock().unwrap().images.insert(image.to_owned());
        }
        tx.expect("no download of that image").send(result).unwrap();
    }

    fn call(&self, op: &str, key: &str, call: Call) -> DriverResult<()> {
        let mut w = self.world.lock().unwrap();
        w.calls.push(call);
        match w.failures.remove(&(op.to_owned(), key.to_owned())) {
            Some(class) => Err(DriverError {
                class,
                what: format!("{op} {key}"),
                message: "scripted failure".into(),
            }),
            None => Ok(()),
        }
    }
}

impl Driver for RecordingDriver {
    async fn observe(&self) -> DriverResult<Vec<Found>> {
        let w = self.world.lock().unwrap();
        Ok(w.containers
            .values()
            .map(|o| Found {
                app: o.clone(),
                runtime: "runc".into(),
                ips: Vec::new(),
            })
            .collect())
    }

    async fn image_present(&self, reference: &str) -> DriverResult<bool> {
        Ok(self.world.lock().unwrap().images.contains(reference))
    }

    fn fetch_image(
        &self,
        reference: String,
        _registries: Vec<RegistryConfig>,
        _progress: watch::Sender<PullProgress>,
    ) -> Fetch {
        let (tx, rx) = oneshot::channel();
        {
            let mut w = self.world.lock().unwrap();
            w.calls.push(Call::Fetch(reference.clone()));
            w.downloads.insert(reference, tx);
        }
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(Failure {
                    class: ErrorClass::Transient,
                    message: "download abandoned".into(),
                })
            })
        })
    }

    async fn image_sets_vnc(&self, app: &AppConfig) -> Option<bool> {
        Some(app.vnc.password.is_some())
    }

    async fn create(&self, build: &Build) -> DriverResult<()> {
        let app = &build.app;
        let id = app.task_id();
        self.call("create", &app.uuid, Call::Create(id.clone()))?;
        let mut w = self.world.lock().unwrap();
        w.next_pid += 1;
        let pid = w.next_pid + 100;
        w.containers.insert(
            id.clone(),
            Observed {
                task_id: id,
                uuid: app.uuid.clone(),
                version: app.version.clone(),
                app_num: app.app_num,
                purge_counter: app.purge_counter,
                phase: Phase::Running,
                exit_status: None,
                pid: Some(pid),
            },
        );
        Ok(())
    }

    async fn start(&self, task_id: &str) -> DriverResult<()> {
        self.call("start", task_id, Call::Start(task_id.to_owned()))?;
        if let Some(c) = self.world.lock().unwrap().containers.get_mut(task_id) {
            c.phase = Phase::Running;
        }
        Ok(())
    }

    async fn restart(&self, task_id: &str) -> DriverResult<()> {
        self.call("restart", task_id, Call::Restart(task_id.to_owned()))?;
        let mut w = self.world.lock().unwrap();
        w.next_pid += 1;
        let pid = w.next_pid + 100;
        if let Some(c) = w.containers.get_mut(task_id) {
            c.phase = Phase::Running;
            c.exit_status = None;
            c.pid = Some(pid);
        }
        Ok(())
    }

    async fn pause(&self, task_id: &str) -> DriverResult<()> {
        self.call("pause", task_id, Call::Pause(task_id.to_owned()))?;
        if let Some(c) = self.world.lock().unwrap().containers.get_mut(task_id) {
            c.phase = Phase::Paused;
        }
        Ok(())
    }

    async fn resume(&self, task_id: &str) -> DriverResult<()> {
        self.call("resume", task_id, Call::Resume(task_id.to_owned()))?;
        if let Some(c) = self.world.lock().unwrap().containers.get_mut(task_id) {
            c.phase = Phase::Running;
        }
        Ok(())
    }

    async fn remove_container(&self, task_id: &str) -> DriverResult<()> {
        self.call(
            "remove_container",
            task_id,
            Call::RemoveContainer(task_id.to_owned()),
        )?;
        self.world.lock().unwrap().containers.remove(task_id);
        Ok(())
    }

    async fn remove_volumes(
        &self,
        uuid: &str,
        generation: u64,
        _data: Option<&AppConfig>,
    ) -> DriverResult<()> {
        self.call(
            "remove_volumes",
            uuid,
            Call::RemoveVolumes(uuid.to_owned(), generation),
        )
    }

    async fn remove_leftovers(&self, uuid: &str) -> DriverResult<()> {
        self.call(
            "remove_leftovers",
            uuid,
            Call::RemoveLeftovers(uuid.to_owned()),
        )
    }

    async fn networks(&self) -> DriverResult<NetworkState> {
        Ok(NetworkState {
            owned: self
                .world
                .lock()
                .unwrap()
                .networks
                .iter()
                .cloned()
                .collect(),
            attachments: Vec::new(),
        })
    }

    fn network_complete(&self, n: &NetworkConfig) -> bool {
        self.world.lock().unwrap().networks.contains(&n.uuid)
    }

    async fn ensure_network(&self, n: &NetworkConfig) -> DriverResult<bool> {
        self.call(
            "ensure_network",
            &n.uuid,
            Call::EnsureNetwork(n.uuid.clone()),
        )?;
        Ok(self.world.lock().unwrap().networks.insert(n.uuid.clone()))
    }

    async fn remove_network(&self, uuid: &str) -> DriverResult<()> {
        self.call("remove_network", uuid, Call::RemoveNetwork(uuid.to_owned()))?;
        self.world.lock().unwrap().networks.remove(uuid);
        Ok(())
    }

    async fn detach(&self, _task_id: &str) -> DriverResult<()> {
        Ok(())
    }

    async fn collect_images(
        &self,
        keep: &HashSet<String>,
        _grace: Duration,
    ) -> DriverResult<Vec<String>> {
        let keep: BTreeSet<String> = keep.iter().cloned().collect();
        let mut w = self.world.lock().unwrap();
        w.calls.push(Call::CollectImages(keep.clone()));
        let gone: Vec<String> = w.images.difference(&keep).cloned().collect();
        w.images.retain(|i| keep.contains(i));
        Ok(gone)
    }
}
