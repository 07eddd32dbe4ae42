//! The controller link: onboarding, the signed config long-poll (one more
//! sender on the config channel), and uploads of info, metrics and logs.
//!
//! Nothing here blocks the device: until the controller answers, the agent
//! runs the checkpoint (or, on a first boot, the signed bootstrap config).
//! Reconnects back off exponentially with full jitter.

mod config_poll;
mod link;
mod logs;
mod onboard;
mod options;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use outpost_cloud::logq::LogQueue;
use outpost_cloud::{Backoff, Bundle, Client, CloudError, IdentityStore};
use tokio::sync::{mpsc, Notify};

pub use self::config_poll::ORIGIN_CONTROLLER;
pub use self::link::CloudLink;
use self::link::{failed, update};
pub use self::onboard::ORIGIN_BOOTSTRAP;
pub use self::options::CloudOptions;
pub use self::uploads::{device_info, sample_metrics};
use crate::daemon::source::RawConfig;
use crate::daemon::state::Shared;

/// Starts the link when `/config/server` names a controller. Returns at
/// once; the work runs in background tasks.
pub fn start(shared: Arc<Shared>, tx: mpsc::Sender<RawConfig>, opts: CloudOptions) {
    let dir = shared.layout.config_dir();
    let bundle = match Bundle::load(&dir) {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::info!(
                dir = %dir.display(),
                "no controller configured (no `server` file); local config only"
            );
            return;
        }
        Err(e) => {
            tracing::error!("controller bundle unusable, running without a controller: {e}");
            return;
        }
    };
    *shared.cloud.write().unwrap() = Some(CloudLink {
        server: bundle.server.clone(),
        uuid: None,
        name: None,
        state: "onboarding",
        last_contact: None,
        last_error: None,
        queue: None,
    });
    tokio::spawn(async move {
        if let Err(e) = run(shared.clone(), tx, bundle, opts).await {
            tracing::error!("controller link stopped: {e}");
            update(&shared, |l| {
                l.state = "stopped";
                l.last_error = Some(e.to_string());
            });
        }
    });
}

async fn run(
    shared: Arc<Shared>,
    tx: mpsc::Sender<RawConfig>,
    bundle: Bundle,
    opts: CloudOptions,
) -> Result<(), CloudError> {
    let no_config = shared.current.read().unwrap().is_none();
    if no_config {
        match onboard::bootstrap(&bundle) {
            Ok(Some(raw)) => {
                tracing::info!(
                    "first boot without a checkpoint: using the signed bootstrap config"
                );
                let _ = tx.send(raw).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("bootstrap config refused: {e}");
                shared.progress.config_evaluated();
                *shared.config_error.write().unwrap() = Some(format!("bootstrap config: {e}"));
                shared.kick.notify_one();
            }
        }
    }

    let ids = IdentityStore::new(shared.layout.persist().join("certs"));
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    let identity = loop {
        match onboard::onboard(&bundle, &ids).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!("onboarding: {e}");
                failed(&shared, &e);
                update(&shared, |l| l.state = "onboarding");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    };
    backoff.reset();
    tracing::info!(
        uuid = identity.uuid,
        name = identity.name,
        server = bundle.server,
        "registered with the controller"
    );
    let client = Client::new(
        &bundle.server,
        &bundle.root_pem,
        Some((&identity.cert_pem, &identity.key_pem)),
    )?;
    let queue = Arc::new(LogQueue::open(
        &shared.layout.persist().join("cloud").join("logq"),
        opts.logq_bytes,
    )?);
    update(&shared, |l| {
        l.uuid = Some(identity.uuid.clone());
        l.name = Some(identity.name.clone());
        l.queue = Some(queue.clone());
    });

    let uuid = identity.uuid.clone();
    tokio::spawn(uploads::info_loop(
        shared.clone(),
        client.clone(),
        uuid.clone(),
        opts.clone(),
    ));
    tokio::spawn(uploads::metrics_loop(
        shared.clone(),
        client.clone(),
        uuid.clone(),
        opts.clone(),
    ));
    let wake = Arc::new(Notify::new());
    logs::spawn_log_reader(&shared, queue.clone(), wake.clone(), opts.log_flush);
    tokio::spawn(logs::log_upload_loop(
        shared.clone(),
        client.clone(),
        uuid.clone(),
        queue,
        wake,
        opts.backoff_max,
    ));
    config_poll::config_loop(shared, client, bundle.root_pem, uuid, tx, opts).await;
    Ok(())
}
