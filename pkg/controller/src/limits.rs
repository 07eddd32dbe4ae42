//! Bounds of the device API and the counters of what they refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every bound the server enforces (defaults as `docs/api.md` says).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent TLS connections; more are closed at once and counted.
    pub max_connections: usize,
    /// TLS handshake + the first request's headers (and every later
    /// request's headers, from when the connection goes idle).
    pub header_timeout: Duration,
    /// A whole request body.
    pub body_timeout: Duration,
    /// JSON request bodies.
    pub max_json_body: usize,
    /// Compressed log batches.
    pub max_log_body: usize,
    /// Decompressed log batches.
    pub max_log_decompressed: usize,
    /// Log lines kept per device.
    pub log_lines_kept: u64,
    /// Metrics samples kept per device.
    pub metrics_kept: u64,
    /// Largest base OS artifact `base-os publish` takes (bytes).
    pub max_base_os_bytes: u64,
    /// Base OS artifacts kept at most (unused ones are deleted to make room).
    pub base_os_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_json_body: 1 << 20,
            max_log_body: 4 << 20,
            max_log_decompressed: 32 << 20,
            log_lines_kept: crate::db::LOG_LINES_KEPT,
            metrics_kept: crate::db::METRICS_KEPT,
            max_base_os_bytes: 2 << 30,
            base_os_kept: 4,
        }
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Live counters (relaxed atomics).
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Stats`] (`outpost-controller stats`).
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct StatsSnapshot {
            $($(#[$doc])* #[serde(default)] pub $name: u64,)*
        }

        impl Stats {
            /// Reads every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl StatsSnapshot {
            /// `(name, value)` pairs, in declaration order.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// TLS connections accepted.
    connections_accepted,
    /// Connections closed at once because `max_connections` were open.
    connections_refused,
    /// Connections open now.
    connections_open,
    /// TLS handshakes that did not finish within the header timeout.
    handshake_timeouts,
    /// TLS handshakes that failed (bad or untrusted client certificate, …).
    handshake_failures,
    /// Connections that ended with an HTTP error (header timeout, bad request line, …).
    connection_errors,
    /// Request bodies refused as too large (413).
    bodies_too_large,
    /// Request bodies that did not arrive within the body timeout.
    body_timeouts,
    /// Config long-polls waiting now.
    long_polls_waiting,
    /// Log follow requests (`device logs -f`, the console's log view)
    /// waiting now.
    log_follows_waiting,
    /// Change notifications (PostgreSQL `NOTIFY`) received from other replicas.
    notifications_received,
    /// Notifications dropped because the queue was full (a catch-up follows).
    notifications_dropped,
    /// Catch-ups run against the shared database (on every (re)connect).
    catch_ups,
    /// Log batches stored.
    log_batches_stored,
    /// Log batches acknowledged again without storing (already held).
    log_batches_duplicate,
    /// Log lines stored.
    log_lines_stored,
    /// Stored log lines dropped to stay within the per-device bound.
    log_lines_dropped,
    /// HTTPS admin requests refused for a missing, unknown or revoked token
    /// (401) or a read-only one that tried a change (403).
    admin_auth_refused,
    /// Web console sessions dropped to stay within the session bound.
    console_sessions_evicted,
    /// Device certificates renewed (`POST /devices/<uuid>/cert`).
    certs_renewed,
    /// Device requests refused because the device is revoked.
    revoked_refused,
    /// Presence batches (last seen, long-poll held) written to the store.
    presence_flushes,
    /// Presence batches the store refused (the next one carries them again).
    presence_flush_failures,
}

/// Counts a waiting request in each of `N` gauges while it lives.
pub(crate) struct Waiting<'a, const N: usize>([&'a AtomicU64; N]);

impl<'a, const N: usize> Waiting<'a, N> {
    /// Adds one to each gauge until dropped.
    pub(crate) fn new(gauges: [&'a AtomicU64; N]) -> Self {
        for g in gauges {
            g.fetch_add(1, Ordering::Relaxed);
        }
        Waiting(gauges)
    }
}

impl<const N: usize> Drop for Waiting<'_, N> {
    fn drop(&mut self) {
        for g in self.0 {
            g.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Resolves once `stop` is (or becomes) `true`, or its sender is gone.
pub async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = *stop.borrow_and_update();
        if now || stop.changed().await.is_err() {
            return;
        }
    }
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
