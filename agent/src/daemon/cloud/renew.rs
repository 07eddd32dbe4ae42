//! Device certificate renewal (`docs/certificates.md`): renews the device
//! certificate when a third of its lifetime is left (same key), swapping
//! the TLS identity of the client every link task shares; nothing else
//! restarts and apps are not touched. A certificate that expired while the
//! device was offline is replaced by registering again with the bootstrap
//! onboarding certificate and the existing device key. Failures back off
//! (never past the expiry) and show in `outpost status` / `outpost check`.

use std::time::Duration;

use outpost_cloud::renew::{self, CertValidity};
use outpost_cloud::{Backoff, Bundle, Client, CloudError, DeviceIdentity, IdentityStore};

use super::options::CloudOptions;
use crate::daemon::snapshot::Handle;

/// Longest sleep between two looks at the certificate (the clock may jump).
const RECHECK: Duration = Duration::from_secs(3600);

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn show(handle: &Handle, v: &CertValidity) {
    let (not_after, renew_at) = (unix(v.not_after), unix(v.renew_at()));
    handle.update_link(|l| {
        l.cert.not_after = Some(not_after);
        l.cert.renew_at = Some(renew_at);
    });
}

fn show_failure(handle: &Handle, e: &CloudError) {
    let msg = e.to_string();
    handle.update_link(|l| {
        l.cert.failures += 1;
        l.cert.last_error = Some(msg);
    });
}

/// Keeps the device certificate valid until the agent stops.
pub(super) async fn renew_loop(
    handle: Handle,
    client: Client,
    bundle: Bundle,
    ids: IdentityStore,
    mut id: DeviceIdentity,
    opts: CloudOptions,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), opts.backoff_max);
    loop {
        let v = match CertValidity::of_pem(&id.cert_pem) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("device certificate unreadable, renewal stopped: {e}");
                show_failure(&handle, &e);
                return;
            }
        };
        show(&handle, &v);
        let now = client.clock().now();
        let outcome = if v.expired(now) {
            tracing::warn!(
                uuid = %id.uuid,
                "the device certificate has expired: registering again with the onboarding certificate"
            );
            reauthenticate(&client, &bundle, &ids)
                .await
                .map(|n| (n, true))
        } else if v.renewal_due(now) {
            let new = renew::renew(&client, &ids, &id, false).await;
            new.map(|n| (n, false))
        } else {
            let wait = v
                .renew_at()
                .duration_since(now)
                .unwrap_or_default()
                .min(RECHECK)
                .max(Duration::from_secs(1));
            tokio::time::sleep(wait).await;
            continue;
        };
        match outcome {
            Ok((new, reauth)) => {
                backoff.reset();
                id = new;
                handle.update_link(|l| {
                    if reauth {
                        l.cert.reauthentications += 1;
                    } else {
                        l.cert.renewals += 1;
                    }
                    l.cert.last_error = None;
                });
            }
            Err(e) => {
                tracing::warn!("device certificate renewal: {e}");
                show_failure(&handle, &e);
                let left = v.remaining(client.clock().now());
                let delay = backoff.next_delay();
                // retry before the certificate expires, if there is time
                let delay = if left > Duration::from_secs(2) {
                    delay.min(left / 2)
                } else {
                    delay
                };
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn reauthenticate(
    client: &Client,
    bundle: &Bundle,
    ids: &IdentityStore,
) -> Result<DeviceIdentity, CloudError> {
    let Some((cert, key)) = &bundle.onboard else {
        return Err(CloudError::BadFile {
            path: bundle.dir.join(outpost_cloud::bundle::ONBOARD_CERT),
            what: "missing: the device certificate expired and only the onboarding certificate can get a new one"
                .into(),
        });
    };
    let onboarding = Client::new(&bundle.server, &bundle.root_pem, Some((cert, key)))?;
    let serial = ids.serial(bundle.serial.as_deref())?;
    renew::reauthenticate(&onboarding, client, ids, &bundle.server, &serial).await
}
