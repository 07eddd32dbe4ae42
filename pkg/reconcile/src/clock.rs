//! The injected clock: Unix milliseconds in, `OffsetDateTime` and human
//! durations out. Nothing here reads the system time.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `now_ms` (Unix milliseconds) as a UTC date-time.
///
/// Values beyond what `time` represents (year 9999) are clamped to the Unix
/// epoch rather than panicking; no real clock produces them.
pub fn datetime(ms: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A date-time as Unix milliseconds (0 for dates before 1970).
pub fn millis(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Time elapsed from `since` to `now_ms`, zero if `since` is in the future.
pub fn age(since: OffsetDateTime, now_ms: u64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(millis(since)))
}

/// A Unix-ms time as RFC 3339 text for status messages.
pub fn rfc3339(ms: u64) -> String {
    datetime(ms)
        .format(&Rfc3339)
        .unwrap_or_else(|_| format!("{ms} ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        for ms in [0, 1, 1_700_000_000_123, 4_102_444_800_000] {
            assert_eq!(millis(datetime(ms)), ms);
        }
    }

    #[test]
    fn age_never_goes_negative() {
        let t = datetime(10_000);
        assert_eq!(age(t, 12_500), Duration::from_millis(2_500));
        assert_eq!(age(t, 5_000), Duration::ZERO);
    }
}
