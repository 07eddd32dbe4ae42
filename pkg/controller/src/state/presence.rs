//! Presence through the store: each controller (replica) writes, every
//! [`PRESENCE_EVERY`], one batch with the devices it saw since the last one
//! and (on a shared store) those whose config long-poll it holds now. Every replica then shows
//! the same "last seen" and "connected" for a device, whichever replica it
//! talks to, and a restarted controller still knows when a device last
//! called. The batch is one statement (PostgreSQL) or one transaction
//! (redb) whatever the fleet's size; a failed one is counted and its rows
//! go again with the next.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Controller, DeviceSlot};
use crate::db::Presence;
use crate::limits::Stats;

/// How often a controller writes its devices' presence.
pub const PRESENCE_EVERY: Duration = Duration::from_secs(10);

/// A device is connected while some replica held its long-poll within
/// this many seconds: three batches, so one late or failed write (or the
/// moment between two long-polls) does not show it as gone.
const CONNECTED_WITHIN: i64 = 3 * PRESENCE_EVERY.as_secs() as i64 + 5;

/// Whether a stored presence says another replica holds the device's
/// long-poll at `now` (Unix seconds).
pub fn connected_by(p: &Presence, now: i64) -> bool {
    p.polling_at > 0 && now - p.polling_at <= CONNECTED_WITHIN
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl DeviceSlot {
    /// This controller's presence row for the device at `now`, if there is
    /// anything new to write. A long-poll held here is written only to a
    /// `shared` store: with one of its own, this controller knows it from
    /// memory and the row would say nothing new every batch.
    fn presence_row(&self, now: i64, shared: bool) -> Option<Presence> {
        let polling = shared && self.connected();
        let seen = self.last_seen.load(Ordering::Relaxed);
        if polling {
            return Some(Presence {
                last_seen: now,
                polling_at: now,
            });
        }
        (seen > self.flushed_seen.load(Ordering::Relaxed)).then_some(Presence {
            last_seen: seen,
            polling_at: 0,
        })
    }
}

impl Controller {
    /// Writes this controller's presence rows (one batch); the number written.
    pub async fn flush_presence(self: &Arc<Self>) -> Result<usize, crate::reply::Failure> {
        let (now, shared) = (unix_now(), self.db.shared());
        let mut slots = Vec::new();
        let mut rows = Vec::new();
        for slot in self.slots() {
            if let Some(p) = slot.presence_row(now, shared) {
                rows.push((slot.uuid(), p));
                slots.push((slot, p.last_seen));
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        match self.blocking(move |c| c.db.record_presence(&rows)).await {
            Ok(()) => {
                Stats::bump(&self.stats.presence_flushes);
                for (slot, seen) in slots {
                    slot.flushed_seen.fetch_max(seen, Ordering::Relaxed);
                }
                Ok(n)
            }
            Err(e) => {
                Stats::bump(&self.stats.presence_flush_failures);
                Err(e)
            }
        }
    }

    /// Writes presence every [`PRESENCE_EVERY`] until shutdown (the server
    /// writes a last batch once its connections are closed).
    pub async fn keep_presence(self: Arc<Self>) {
        let mut shutdown = self.shutdown.subscribe();
        let mut tick = tokio::time::interval(PRESENCE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            match self.flush_presence().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("device presence is written to the store again");
                }
                Ok(_) => {}
                // one warning per outage, not one per batch
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e.message, every = ?PRESENCE_EVERY, "could not write device presence; retrying");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connected_only_while_a_recent_batch_saw_the_long_poll() {
        let p = |polling_at| Presence {
            last_seen: polling_at,
            polling_at,
        };
        assert!(connected_by(&p(1000), 1000));
        assert!(connected_by(&p(1000), 1000 + CONNECTED_WITHIN));
        assert!(!connected_by(&p(1000), 1001 + CONNECTED_WITHIN));
        assert!(!connected_by(&p(0), 5), "never held");
    }

    #[test]
    fn merge_keeps_the_later_of_each_field() {
        let a = Presence {
            last_seen: 10,
            polling_at: 0,
        };
        let b = Presence {
            last_seen: 5,
            polling_at: 7,
        };
        assert_eq!(
            a.merge(b),
            Presence {
                last_seen: 10,
                polling_at: 7
            }
        );
    }
}
