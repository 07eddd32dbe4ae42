//! Restart backoff for device services: pure, with the clock passed in.
//!
//! A declared service that exits is restarted after `initial`, then after
//! twice as long each time it exits again, up to `max`. A service that ran
//! for `reset_after` before exiting starts again from `initial`.

use std::time::{Duration, Instant};

/// The backoff settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// A run this long forgets earlier failures.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl BackoffPolicy {
    /// The delay before attempt `attempt` (0-based): `initial · 2^attempt`, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Backoff state of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failed runs (exits before `reset_after`, or failed starts).
    pub attempts: u32,
    /// When the next restart may happen; `None` while the service runs.
    pub next_at: Option<Instant>,
    /// When the agent last started it.
    pub last_start: Option<Instant>,
}

impl Backoff {
    /// The service was seen not running at `now`: schedules the next
    /// restart (once per exit; later calls keep the schedule) and returns it.
    pub fn exited(&mut self, p: &BackoffPolicy, now: Instant) -> Instant {
        if let Some(at) = self.next_at {
            return at;
        }
        if self
            .last_start
            .is_some_and(|s| now.saturating_duration_since(s) >= p.reset_after)
        {
            self.attempts = 0;
        }
        self.schedule(p, now)
    }

    /// A restart attempt failed at `now`: schedules the next one, longer.
    pub fn failed(&mut self, p: &BackoffPolicy, now: Instant) -> Instant {
        self.schedule(p, now)
    }

    /// The service was (re)started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.next_at = None;
        self.last_start = Some(now);
    }

    /// True when a scheduled restart is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next_at.is_some_and(|at| at <= now)
    }

    fn schedule(&mut self, p: &BackoffPolicy, now: Instant) -> Instant {
        let at = now + p.delay(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        self.next_at = Some(at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            initial: 100 * MS,
            max: 1000 * MS,
            reset_after: 5000 * MS,
        }
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let p = policy();
        let got: Vec<u64> = (0..7).map(|a| p.delay(a).as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(p.delay(u32::MAX), p.max);
    }

    #[test]
    fn quick_exits_back_off_and_a_long_run_resets() {
        let (p, t0) = (policy(), Instant::now());
        let mut b = Backoff::default();
        // First exit: restart after `initial`, not before.
        assert_eq!(b.exited(&p, t0), t0 + 100 * MS);
        assert!(!b.due(t0 + 99 * MS));
        assert!(b.due(t0 + 100 * MS));
        // Seeing it down again does not push the schedule.
        assert_eq!(b.exited(&p, t0 + 50 * MS), t0 + 100 * MS);
        b.started(t0 + 100 * MS);
        assert!(!b.due(t0 + 200 * MS));
        // Exits again quickly: twice as long.
        assert_eq!(b.exited(&p, t0 + 150 * MS), t0 + 350 * MS);
        b.started(t0 + 350 * MS);
        assert_eq!(b.exited(&p, t0 + 400 * MS), t0 + 800 * MS);
        // A failed start waits longer still.
        assert_eq!(b.failed(&p, t0 + 800 * MS), t0 + 1600 * MS);
        b.started(t0 + 1600 * MS);
        // Ran for reset_after: back to `initial`.
        let late = t0 + 1600 * MS + 5000 * MS;
        assert_eq!(b.exited(&p, late), late + 100 * MS);
        assert_eq!(b.attempts, 1);
    }
}
