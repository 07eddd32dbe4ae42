//! Following the other replicas' changes on a shared (PostgreSQL) store.
//!
//! Every committed change of a device or its config is announced with
//! `NOTIFY outpost_config, '<device uuid>'`. Each replica holds one
//! dedicated connection that `LISTEN`s; a notification makes it re-read
//! those devices and their configs (so long-polls held here are woken).
//! Whenever that connection is (re)made — and every [`CATCH_UP_EVERY`] as
//! a backstop — it runs a catch-up: every device and config generation
//! compared with what this replica holds, so a notification missed while
//! the connection was down never loses an update.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{Controller, DeviceSlot};
use crate::limits::Stats;
use crate::reply::Failure;
use crate::store::pg::{describe, error_text, CHANNEL};

/// Notifications queued between the connection and the refresher; beyond
/// it they are dropped (counted) and a catch-up replaces them.
pub const NOTIFY_QUEUE: usize = 16_384;
/// Device UUIDs re-read per query.
const REFRESH_BATCH: usize = 1000;
/// A catch-up at least this often even without reconnecting.
pub const CATCH_UP_EVERY: Duration = Duration::from_secs(30);

impl Controller {
    /// Whether this controller shares its store with other replicas.
    pub fn is_replica(&self) -> bool {
        self.follow.is_some()
    }

    /// Follows the other replicas' changes until shutdown (a no-op for a
    /// store of our own). Reconnects with a growing delay (0.1 s to 2 s).
    pub async fn follow(self: Arc<Self>) {
        let Some((mut config, tls)) = self.follow.clone() else {
            return;
        };
        // a dead peer is noticed (and a catch-up follows the reconnect)
        config
            .connect_timeout(Duration::from_secs(10))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name("outpost-controller LISTEN");
        let label = describe(&config);
        let mut shutdown = self.shutdown.subscribe();
        let mut delay = Duration::from_millis(100);
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            match config.connect(tls.clone()).await {
                Ok((client, mut connection)) => {
                    let (tx, rx) = mpsc::channel(NOTIFY_QUEUE);
                    let overflow = Arc::new(AtomicBool::new(false));
                    let pump = {
                        let (me, overflow) = (self.clone(), overflow.clone());
                        let mut messages =
                            futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                        tokio::spawn(async move {
                            while let Some(m) = messages.next().await {
                                match m {
                                    Ok(AsyncMessage::Notification(n)) => {
                                        Stats::bump(&me.stats.notifications_received);
                                        if tx.try_send(n.payload().to_owned()).is_err() {
                                            Stats::bump(&me.stats.notifications_dropped);
                                            overflow.store(true, Ordering::Relaxed);
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        tracing::warn!(error = %error_text(&e), "LISTEN connection failed");
                                        break;
                                    }
                                }
                            }
                        })
                    };
                    match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        Ok(()) => {
                            tracing::info!(database = %label, "listening for other replicas' changes");
                            delay = Duration::from_millis(100);
                            self.listen_loop(rx, &overflow, &mut shutdown).await;
                        }
                        Err(e) => {
                            tracing::warn!(database = %label, error = %error_text(&e), "LISTEN refused")
                        }
                    }
                    drop(client);
                    pump.abort();
                    if *shutdown.borrow() {
                        return;
                    }
                    tracing::warn!(database = %label, "LISTEN connection lost; reconnecting");
                }
                Err(e) => {
                    tracing::warn!(database = %label, error = %error_text(&e), retry_in = ?delay,
                        "cannot connect to follow the other replicas")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Catches up, then applies notifications until the connection ends.
    async fn listen_loop(
        self: &Arc<Self>,
        mut rx: mpsc::Receiver<String>,
        overflow: &AtomicBool,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e.message, "catch-up failed; reconnecting");
            return;
        }
        let mut tick = tokio::time::interval(CATCH_UP_EVERY);
        tick.reset();
        loop {
            let first = tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => Some(n),
                    None => return,
                },
                _ = tick.tick() => None,
                _ = shutdown.changed() => return,
            };
            let outcome = match first {
                _ if overflow.swap(false, Ordering::Relaxed) => {
                    while rx.try_recv().is_ok() {}
                    self.catch_up().await
                }
                None => self.catch_up().await,
                Some(first) => {
                    let mut batch = BTreeSet::from([first]);
                    while batch.len() < REFRESH_BATCH {
                        match rx.try_recv() {
                            Ok(n) => batch.insert(n),
                            Err(_) => break,
                        };
                    }
                    self.refresh(batch.into_iter().collect()).await
                }
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e.message, "following a change failed; reconnecting to catch up");
                return;
            }
        }
    }

    /// Re-reads every device and config generation from the store and
    /// brings this replica's slots up to date.
    pub async fn catch_up(self: &Arc<Self>) -> Result<(), Failure> {
        let _ops = self.ops.lock().await;
        Stats::bump(&self.stats.catch_ups);
        let held: HashMap<String, u64> = self
            .slots()
            .iter()
            .map(|s| {
                let g = s.config.borrow().as_ref().map_or(0, |c| c.generation);
                (s.uuid(), g)
            })
            .collect();
        let (devices, configs) = self
            .blocking(move |c| {
                let devices = c.db.devices()?;
                let generations = c.db.config_generations()?;
                let stale: Vec<String> = generations
                    .into_iter()
                    .filter(|(u, g)| held.get(u).is_none_or(|h| g > h))
                    .map(|(u, _)| u)
                    .collect();
                Ok((devices, c.db.configs_of(&stale)?))
            })
            .await?;
        let present: std::collections::HashSet<&str> =
            devices.iter().map(|d| d.uuid.as_str()).collect();
        let gone: Vec<String> = self
            .slots()
            .iter()
            .map(|s| s.uuid())
            .filter(|u| !present.contains(u.as_str()))
            .collect();
        for uuid in &gone {
            self.remove_slot(uuid);
        }
        for record in devices {
            self.insert_slot(record);
        }
        for (uuid, config) in &configs {
            self.publish(uuid, config);
        }
        tracing::info!(
            removed = gone.len(),
            configs = configs.len(),
            "caught up with the shared database"
        );
        Ok(())
    }

    /// Re-reads these devices and their configs from the store.
    pub async fn refresh(self: &Arc<Self>, uuids: Vec<String>) -> Result<(), Failure> {
        let _ops = self.ops.lock().await;
        let (devices, configs) = {
            let uuids = uuids.clone();
            self.blocking(move |c| Ok((c.db.devices_of(&uuids)?, c.db.configs_of(&uuids)?)))
                .await?
        };
        for uuid in &uuids {
            if !devices.iter().any(|d| &d.uuid == uuid) {
                self.remove_slot(uuid);
            }
        }
        for record in devices {
            self.insert_slot(record);
        }
        for (uuid, config) in &configs {
            self.publish(uuid, config);
        }
        Ok(())
    }

    /// [`Controller::authorize_device`]; on a replica, a certificate this
    /// replica does not know yet (registered through another one a moment
    /// ago) is looked up in the store before it is refused.
    pub async fn authorize(
        self: &Arc<Self>,
        fingerprint: Option<&str>,
        uuid: &str,
    ) -> Result<Arc<DeviceSlot>, Failure> {
        match self.authorize_device(fingerprint, uuid) {
            Err(e) if self.is_replica() && e.status == axum::http::StatusCode::UNAUTHORIZED => {
                if fingerprint.is_some() && uuid::Uuid::parse_str(uuid).is_ok() {
                    self.refresh(vec![uuid.to_owned()]).await?;
                    return self.authorize_device(fingerprint, uuid);
                }
                Err(e)
            }
            other => other,
        }
    }
}
