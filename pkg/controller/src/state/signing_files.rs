//! `signing rotate` on a running controller: `serve` looks at the state
//! dir's signing files every [`SIGNING_CHECK_EVERY`] and, when they
//! changed, signs with the new key and serves the new certificate and the
//! retired ones from then on, no restart needed. With replicas, copy the
//! files to each replica's state dir; each picks them up by itself. A
//! half-written rotation (new key, old certificate) does not load and is
//! tried again at the next look.

use std::sync::Arc;
use std::time::Duration;

use super::Controller;
use crate::certs::signing::{files_stamp, Signing};
use crate::error::Result;

/// How often `serve` looks at the signing files (a `stat` of three files).
pub const SIGNING_CHECK_EVERY: Duration = Duration::from_secs(5);

impl Controller {
    /// Reads the signing files again if they changed since last read;
    /// whether the signer in use changed.
    pub fn reload_signing(&self) -> Result<bool> {
        let old = self.signing();
        if files_stamp(&self.state) == old.stamp {
            return Ok(false);
        }
        let new = Arc::new(Signing::load(&self.state)?);
        let (from, to) = (old.signer.fingerprint(), new.signer.fingerprint());
        let changed = from != to;
        if changed {
            tracing::info!(old = %from, new = %to, "signing files changed: configs set from now on are signed by the new certificate");
        } else {
            tracing::info!("signing files changed: retired certificates reloaded");
        }
        *self.signing.write().unwrap() = new;
        Ok(changed)
    }

    /// Looks at the signing files until shutdown.
    pub async fn keep_signing_fresh(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut last_error = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SIGNING_CHECK_EVERY) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let me = self.clone();
            let out = tokio::task::spawn_blocking(move || me.reload_signing()).await;
            match out {
                Ok(Ok(_)) => last_error = None,
                Ok(Err(e)) => {
                    let text = e.to_string();
                    // once per distinct problem, not every 5 s
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, "the signing files changed but do not load; still signing with the previous key");
                        last_error = Some(text);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reloading the signing files"),
            }
        }
    }
}
