//! Restart policy and exponential backoff (Outpost improvement 2 over EVE,
//! which leaves an exited app BROKEN until someone restarts it).

use outpost_api::{RestartMode, RestartPolicy};
use serde::{Deserialize, Serialize};

use crate::history::AppRecord;

/// Timing knobs of the restart policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tunables {
    /// Delay before the first restart after a failure (and the first retry of
    /// a failed action); doubles with every further one.
    pub backoff_initial_ms: u64,
    /// Upper bound of the doubling delay.
    pub backoff_max_ms: u64,
    /// A run at least this long counts as healthy: the restart count starts
    /// again from zero.
    pub healthy_reset_ms: u64,
}

impl Default for Tunables {
    /// 10 s doubling to 5 min; reset after 10 min healthy.
    fn default() -> Self {
        Tunables {
            backoff_initial_ms: 10_000,
            backoff_max_ms: 300_000,
            healthy_reset_ms: 600_000,
        }
    }
}

impl Tunables {
    /// Delay before the `n`-th consecutive retry (`n` ≥ 1):
    /// `initial × 2^(n-1)`, at most `max`.
    pub fn backoff_delay(&self, n: u32) -> u64 {
        let doublings = n.saturating_sub(1).min(63);
        self.backoff_initial_ms
            .saturating_mul(1u64 << doublings)
            .min(self.backoff_max_ms)
    }
}

/// Whether the policy restarts a task that stopped with `exit_status`
/// (`None` = unknown, treated as a failure).
pub fn wants_restart(mode: RestartMode, exit_status: Option<u32>) -> bool {
    match mode {
        RestartMode::Always => true,
        RestartMode::OnFailure => exit_status != Some(0),
        RestartMode::Never => false,
    }
}

/// What the policy decided about a run that just ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The policy does not restart this exit: the app stays down.
    Stay,
    /// The last allowed restart failed too: the app is FAILED.
    GiveUp,
    /// Restart at this time (Unix ms).
    RestartAt(u64),
}

/// Counts the end of the current run in `rec` and decides what follows.
///
/// A run that lasted at least `healthy_reset_ms` (measured up to `now_ms`,
/// when the end is noticed) resets `attempts` first. `attempts` counts the
/// restarts made in a row; when a run fails with `attempts` already at
/// `max_attempts` (0 = unlimited) the policy gives up.
pub(crate) fn count_exit(
    rec: &mut AppRecord,
    policy: &RestartPolicy,
    exit_status: Option<u32>,
    now_ms: u64,
    tunables: &Tunables,
) -> Verdict {
    if let Some(started) = rec.started_ms.take() {
        if now_ms.saturating_sub(started) >= tunables.healthy_reset_ms {
            rec.attempts = 0;
        }
    }
    if !wants_restart(policy.mode, exit_status) {
        rec.next_start_ms = None;
        return Verdict::Stay;
    }
    if policy.max_attempts != 0 && rec.attempts >= policy.max_attempts {
        rec.failed = true;
        rec.next_start_ms = None;
        return Verdict::GiveUp;
    }
    rec.attempts += 1;
    let at = now_ms.saturating_add(tunables.backoff_delay(rec.attempts));
    rec.next_start_ms = Some(at);
    Verdict::RestartAt(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t = Tunables::default();
        let got: Vec<u64> = (1..=8).map(|n| t.backoff_delay(n) / 1000).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(t.backoff_delay(u32::MAX), 300_000);
        assert_eq!(t.backoff_delay(0), 10_000);
    }

    #[test]
    fn which_exits_restart() {
        use RestartMode::*;
        let cases = [
            (Always, Some(0), true),
            (Always, Some(1), true),
            (OnFailure, Some(0), false),
            (OnFailure, Some(137), true),
            (OnFailure, None, true),
            (Never, Some(0), false),
            (Never, Some(1), false),
        ];
        for (mode, exit, want) in cases {
            assert_eq!(wants_restart(mode, exit), want, "{mode:?} {exit:?}");
        }
    }

    #[test]
    fn counting_gives_up_after_max_attempts() {
        let t = Tunables::default();
        let policy = RestartPolicy {
            mode: RestartMode::Always,
            max_attempts: 2,
        };
        let mut rec = AppRecord::default();
        let mut now = 0;
        let mut verdicts = Vec::new();
        for _ in 0..3 {
            rec.started_ms = Some(now);
            now += 1_000;
            verdicts.push(count_exit(&mut rec, &policy, Some(1), now, &t));
        }
        assert_eq!(
            verdicts,
            [
                Verdict::RestartAt(1_000 + 10_000),
                Verdict::RestartAt(2_000 + 20_000),
                Verdict::GiveUp
            ]
        );
        assert!(rec.failed);
    }

    #[test]
    fn a_healthy_run_resets_the_count() {
        let t = Tunables::default();
        let policy = RestartPolicy::default();
        let mut rec = AppRecord {
            attempts: 5,
            started_ms: Some(0),
            ..AppRecord::default()
        };
        let v = count_exit(&mut rec, &policy, Some(1), 600_000, &t);
        assert_eq!(v, Verdict::RestartAt(610_000));
        assert_eq!(rec.attempts, 1);
    }
}
