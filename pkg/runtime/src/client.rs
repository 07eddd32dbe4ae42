//! A namespaced handle on one containerd instance.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, diff_client::DiffClient,
    events_client::EventsClient, images_client::ImagesClient, leases_client::LeasesClient,
    snapshots::snapshots_client::SnapshotsClient, tasks_client::TasksClient,
    version_client::VersionClient,
};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Request;

use crate::error::{Result, RuntimeError};

/// Namespace of device services in the system instance.
pub const SYSTEM_NAMESPACE: &str = "services.linuxkit";
/// Namespace of user apps in the user instance.
pub const USER_NAMESPACE: &str = "eve-user-apps";
/// The snapshotter Outpost uses.
pub const SNAPSHOTTER: &str = "overlayfs";

/// A connection to one containerd instance, scoped to one namespace.
#[derive(Clone, Debug)]
pub struct Containerd {
    channel: Channel,
    namespace: String,
    socket: PathBuf,
}

impl Containerd {
    /// Connects to `socket` (lazily: the first call dials) in `namespace`.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self> {
        let channel =
            containerd_client::connect(socket)
                .await
                .map_err(|source| RuntimeError::Connect {
                    socket: socket.to_owned(),
                    source,
                })?;
        Ok(Containerd {
            channel,
            namespace: namespace.to_owned(),
            socket: socket.to_owned(),
        })
    }

    /// Connects, retrying until `timeout` (a daemon that is still starting).
    pub async fn connect_wait(socket: &Path, namespace: &str, timeout: Duration) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let attempt = async {
                let c = Containerd::connect(socket, namespace).await?;
                c.version().await?;
                Ok::<_, RuntimeError>(c)
            };
            match attempt.await {
                Ok(c) => return Ok(c),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The same connection in another namespace.
    pub fn with_namespace(&self, namespace: &str) -> Self {
        Containerd {
            channel: self.channel.clone(),
            namespace: namespace.to_owned(),
            socket: self.socket.clone(),
        }
    }

    /// Namespace of this handle.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Socket of this handle.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Wraps a message with the namespace header.
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Ok(ns) = MetadataValue::try_from(self.namespace.as_str()) {
            req.metadata_mut().insert("containerd-namespace", ns);
        }
        req
    }

    /// Wraps a message with the namespace and lease headers.
    pub fn req_leased<T>(&self, msg: T, lease: &str) -> Request<T> {
        let mut req = self.req(msg);
        if let Ok(l) = MetadataValue::try_from(lease) {
            req.metadata_mut().insert("containerd-lease", l);
        }
        req
    }

    /// containerd's version string (also a liveness check).
    pub async fn version(&self) -> Result<String> {
        let v = VersionClient::new(self.channel.clone())
            .version(())
            .await
            .map_err(|s| {
                RuntimeError::api("version.Version", self.socket.display().to_string(), s)
            })?;
        Ok(v.into_inner().version)
    }

    /// Containers service.
    pub fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }

    /// Tasks service.
    pub fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    /// Content service.
    pub fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone()).max_decoding_message_size(64 << 20)
    }

    /// Images service.
    pub fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }

    /// Snapshots service.
    pub fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }

    /// Diff service.
    pub fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }

    /// Leases service.
    pub fn leases(&self) -> LeasesClient<Channel> {
        LeasesClient::new(self.channel.clone())
    }

    /// Events service.
    pub fn events(&self) -> EventsClient<Channel> {
        EventsClient::new(self.channel.clone())
    }
}
