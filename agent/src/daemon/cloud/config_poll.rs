//! The signed config long-poll: one more sender on the config channel.

use std::time::{Duration, Instant};

use outpost_cloud::{Backoff, Client, CloudError, Poll, Verifier};
use tokio::sync::mpsc;

use super::link::{contact, failed};
use super::options::CloudOptions;
use crate::daemon::snapshot::{Event, Handle};
use crate::daemon::source::RawConfig;

/// Origin of configs from the controller.
pub const ORIGIN_CONTROLLER: &str = "controller";

pub(super) async fn config_loop(
    handle: Handle,
    client: Client,
    root_pem: Vec<u8>,
    uuid: String,
    tx: mpsc::Sender<RawConfig>,
    opts: CloudOptions,
) {
    let mut verifier = match Verifier::new(&root_pem) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("config verification impossible: {e}");
            return;
        }
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    let mut etag: Option<String> = None;
    loop {
        if !verifier.has_signing_cert() {
            let r = client.signing_cert().await.and_then(|pem| {
                verifier.set_signing_cert(pem.as_bytes())?;
                Ok(())
            });
            if let Err(e) = r {
                tracing::warn!("fetching the signing certificate: {e}");
                failed(&handle, &e);
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        }
        let asked = Instant::now();
        match client
            .poll_config(&uuid, etag.as_deref(), opts.poll_wait)
            .await
        {
            Ok(Poll::Changed {
                envelope,
                etag: header_etag,
            }) => {
                contact(&handle);
                backoff.reset();
                match client.learn_signer(&mut verifier, &envelope.signer).await {
                    Ok(true) => tracing::info!(
                        signer = %envelope.signer,
                        "learnt the signing certificate a config names (signing key rotated)"
                    ),
                    Ok(false) => {}
                    Err(e @ CloudError::Signature(_)) => {
                        // served, but not a signer of our root: refuse this
                        // document until it changes
                        etag = header_etag;
                        refuse(&handle, &e.to_string()).await;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(signer = %envelope.signer, "fetching the signing certificate: {e}");
                        failed(&handle, &e);
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                }
                match verifier.open(&envelope) {
                    Ok(opened) if opened.payload.device.as_deref() == Some(uuid.as_str()) => {
                        etag = Some(opened.etag);
                        let raw = RawConfig {
                            bytes: serde_json::to_vec(&opened.payload.config)
                                .expect("serialisable"),
                            origin: ORIGIN_CONTROLLER.into(),
                        };
                        if tx.send(raw).await.is_err() {
                            return;
                        }
                    }
                    Ok(opened) => {
                        etag = Some(opened.etag);
                        refuse(
                            &handle,
                            &format!(
                                "config for device {:?} sent to device {uuid}",
                                opened.payload.device
                            ),
                        )
                        .await;
                    }
                    Err(e) => {
                        // Maybe the signing certificate was replaced: fetch it
                        // again before the next poll, and do not ask for this
                        // same document again until it changes.
                        verifier = Verifier::new(&root_pem).expect("checked above");
                        etag = header_etag;
                        refuse(&handle, &e.to_string()).await;
                    }
                }
            }
            Ok(Poll::NotModified) => {
                contact(&handle);
                backoff.reset();
            }
            Ok(Poll::Empty) => {
                contact(&handle);
                backoff.reset();
                // Nothing to wait on yet: do not spin if the controller
                // answers at once.
                let min = opts.poll_wait.min(Duration::from_secs(5));
                if asked.elapsed() < min {
                    tokio::time::sleep(min - asked.elapsed()).await;
                }
            }
            Err(e) => {
                tracing::warn!("config poll: {e}");
                failed(&handle, &e);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

async fn refuse(handle: &Handle, why: &str) {
    tracing::error!(
        "config from the controller refused: {why}; the config in effect keeps running"
    );
    // The loop counts it, shows it and passes once, so `configs_evaluated`
    // and `idle_through` show it changed nothing.
    handle
        .tell(Event::Refused(format!(
            "config from the controller refused: {why}"
        )))
        .await;
}
