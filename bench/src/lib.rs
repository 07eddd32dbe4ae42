//! Helpers shared by Outpost's benchmarks (`bench/src/bin/*`): statistics
//! and side-by-side printing. Each benchmark measures Outpost and a
//! baseline in the same run, so the numbers compare like with like.

use std::time::Duration;

pub mod controller;
pub mod scratch;

/// Median of a sample (sorted copy).
pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// The p-th percentile (nearest rank) of a sample.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Prints one comparison row: name, ours, baseline, ratio.
pub fn row(name: &str, ours: Duration, base: Duration) {
    let ratio = if base.is_zero() {
        f64::NAN
    } else {
        ours.as_secs_f64() / base.as_secs_f64()
    };
    println!("{name:<34} {:>12} {:>12} {ratio:>8.2}x", ms(ours), ms(base));
}

/// Peak resident set size of a process in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let s: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(median(&s), Duration::from_millis(5));
        assert_eq!(percentile(&s, 90.0), Duration::from_millis(9));
        assert_eq!(percentile(&s, 100.0), Duration::from_millis(10));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
