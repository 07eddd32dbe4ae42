//! An injectable wall clock for certificate validity: the system clock in
//! production, a manual one that tests advance (a simulated month of 1-hour
//! certificates runs in seconds). Everything that decides "is this
//! certificate valid now" or "when does this one end" on either side of the
//! controller protocol reads the time from a [`Clock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A wall clock: the system's, or a manual one shared by its clones.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Unix milliseconds of a manual clock; `None`: the system clock.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A manual clock standing at `start` until [`Clock::advance`]d.
    pub fn manual(start: SystemTime) -> Self {
        let ms = start
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Clock {
            manual: Some(Arc::new(AtomicI64::new(ms))),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock (and all its clones) forward by `by`; the
    /// system clock cannot be moved (no-op).
    pub fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            m.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// The time now.
    pub fn now(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(m) => {
                let ms = m.load(Ordering::SeqCst).max(0).unsigned_abs();
                UNIX_EPOCH + Duration::from_millis(ms)
            }
        }
    }

    /// Time since the Unix epoch now (zero for a clock before it); what
    /// certificate validity checks take (`UnixTime::since_unix_epoch`).
    pub fn since_epoch(&self) -> std::time::Duration {
        self.now().duration_since(UNIX_EPOCH).unwrap_or_default()
    }

    /// Whole seconds since the Unix epoch now.
    pub fn unix_secs(&self) -> u64 {
        self.since_epoch().as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = Clock::manual(start);
        let d = c.clone();
        assert_eq!(c.now(), start);
        d.advance(Duration::from_secs(3600));
        assert_eq!(c.unix_secs(), 1_700_003_600);
        assert!(!Clock::system().is_manual());
    }
}
