//! Controller link settings.

use std::time::Duration;

/// Controller link settings.
#[derive(Clone, Debug)]
pub struct CloudOptions {
    /// Long-poll wait asked of the controller.
    pub poll_wait: Duration,
    /// Info is sent on change and at least this often.
    pub info_interval: Duration,
    /// Metrics interval.
    pub metrics_interval: Duration,
    /// Longest time a log line waits before its batch is cut.
    pub log_flush: Duration,
    /// Bound of the on-disk log queue, bytes.
    pub logq_bytes: u64,
    /// Longest reconnect backoff.
    pub backoff_max: Duration,
}

impl Default for CloudOptions {
    fn default() -> Self {
        CloudOptions {
            poll_wait: Duration::from_secs(60),
            info_interval: Duration::from_secs(60),
            metrics_interval: Duration::from_secs(60),
            log_flush: Duration::from_secs(5),
            logq_bytes: 16 << 20,
            backoff_max: Duration::from_secs(60),
        }
    }
}
