//! How the loop runs, and where it reads the time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_reconcile::Tunables;

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct LoopOptions {
    /// Slow periodic resync when nothing happens.
    pub resync: Duration,
    /// Actions carried out at once (across apps).
    pub parallel: usize,
    /// Healthy time before the applied config becomes known-good.
    pub known_good_after: Duration,
    /// Restart backoff settings.
    pub tunables: Tunables,
    /// Unused images are deleted once this old (and checked this often).
    pub image_gc_grace: Duration,
}

impl Default for LoopOptions {
    fn default() -> Self {
        LoopOptions {
            resync: Duration::from_secs(30),
            parallel: 4,
            known_good_after: Duration::from_secs(600),
            tunables: Tunables::default(),
            image_gc_grace: Duration::from_secs(600),
        }
    }
}

/// Where the loop reads the time: the system clock, or a test's.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
