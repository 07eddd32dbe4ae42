//! Reconnect backoff: exponential with full jitter (AWS architecture blog's
//! "full jitter"), so a fleet that lost its controller does not come back
//! in lock-step.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter between 0 and the current ceiling.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Ceiling starts at `min` and doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            ceiling: min,
        }
    }

    /// The next delay: uniform in `[min/2, ceiling]`, then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let lo = self.min / 2;
        let hi = self.ceiling.max(lo);
        let d = rand::rng().random_range(lo..=hi);
        self.ceiling = (self.ceiling * 2).min(self.max);
        d
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
        assert_eq!(b.ceiling, Duration::from_secs(8));
        b.reset();
        let d = b.next_delay();
        assert!(d <= Duration::from_secs(1), "{d:?}");
    }
}
