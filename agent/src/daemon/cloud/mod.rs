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
mod renew;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use outpost_cloud::logq::LogQueue;
use outpost_cloud::{Backoff, Bundle, Client, CloudError, IdentityStore};
use tokio::sync::{mpsc, Notify};

pub use self::config_poll::ORIGIN_CONTROLLER;
use self::link::failed;
pub use self::onboard::ORIGIN_BOOTSTRAP;
pub use self::options::CloudOptions;
pub use self::uploads::{device_info, sample_metrics};
use crate::daemon::snapshot::{Event, Handle, LinkState, LinkView};
use crate::daemon::source::RawConfig;

/// Starts the link when `/config/server` names a controller. Returns at
/// once; the work runs in background tasks.
pub fn start(handle: Handle, tx: mpsc::Sender<RawConfig>, opts: CloudOptions) {
    let dir = handle.layout.config_dir();
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
    handle
        .link
        .send_replace(Some(LinkView::onboarding(bundle.server.clone())));
    tokio::spawn(async move {
        if let Err(e) = run(handle.clone(), tx, bundle, opts).await {
            tracing::error!("controller link stopped: {e}");
            handle.update_link(|l| {
                l.state = LinkState::Stopped;
                l.last_error = Some(e.to_string());
            });
        }
    });
}

async fn run(
    handle: Handle,
    tx: mpsc::Sender<RawConfig>,
    bundle: Bundle,
    opts: CloudOptions,
) -> Result<(), CloudError> {
    let no_config = handle.now().current.is_none();
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
                handle
                    .tell(Event::Refused(format!("bootstrap config: {e}")))
                    .await;
            }
        }
    }

    let ids = IdentityStore::new(handle.layout.persist().join("certs"));
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    let identity = loop {
        match onboard::onboard(&bundle, &ids).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!("onboarding: {e}");
                failed(&handle, &e);
                handle.update_link(|l| l.state = LinkState::Onboarding);
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
        &handle.layout.persist().join("cloud").join("logq"),
        opts.logq_bytes,
    )?);
    handle.update_link(|l| {
        l.uuid = Some(identity.uuid.clone());
        l.name = Some(identity.name.clone());
        l.queue = Some(queue.clone());
    });

    let uuid = identity.uuid.clone();
    tokio::spawn(renew::renew_loop(
        handle.clone(),
        client.clone(),
        bundle.clone(),
        ids.clone(),
        identity.clone(),
        opts.clone(),
    ));
    tokio::spawn(uploads::info_loop(
        handle.clone(),
        client.clone(),
        uuid.clone(),
        opts.clone(),
    ));
    tokio::spawn(uploads::metrics_loop(
        handle.clone(),
        client.clone(),
        uuid.clone(),
        opts.clone(),
    ));
    let wake = Arc::new(Notify::new());
    logs::spawn_log_reader(&handle, queue.clone(), wake.clone(), opts.log_flush);
    tokio::spawn(logs::log_upload_loop(
        handle.clone(),
        client.clone(),
        uuid.clone(),
        queue,
        wake,
        opts.backoff_max,
    ));
    config_poll::config_loop(handle, client, bundle.root_pem, uuid, tx, opts).await;
    Ok(())
}
