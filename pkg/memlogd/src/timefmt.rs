//! Go's `time.RFC3339Nano` layout (`2006-01-02T15:04:05.999999999Z07:00`):
//! the fraction has its trailing zeros trimmed and disappears when zero; a
//! zero offset prints as `Z`.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Formats `t` exactly as Go's `t.Format(time.RFC3339Nano)` does.
pub fn format_rfc3339_nano(t: OffsetDateTime) -> String {
    let mut out = Vec::with_capacity(35);
    write_datetime(&mut out, t);
    let off = t.offset();
    if off.is_utc() {
        out.push(b'Z');
    } else {
        let total = off.whole_minutes();
        let sign = if total < 0 { '-' } else { '+' };
        let total = total.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", total / 60, total % 60);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `now` in UTC as RFC3339Nano (used for every ingested line).
pub(crate) fn write_system_time_utc(out: &mut Vec<u8>, now: SystemTime) {
    let nanos = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()) * 1_000_000_000 + i128::from(d.subsec_nanos()),
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    write_datetime(out, t);
    out.push(b'Z');
}

fn write_datetime(out: &mut Vec<u8>, t: OffsetDateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    write_fraction(out, t.nanosecond());
}

/// `.` and the nanoseconds without trailing zeros, nothing when zero.
fn write_fraction(out: &mut Vec<u8>, nanos: u32) {
    if nanos == 0 {
        return;
    }
    let mut digits = [0u8; 9];
    let mut n = nanos;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.push(b'.');
    out.extend_from_slice(&digits[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn matches_go_rfc3339nano() {
        let cases = [
            (datetime!(1970-01-01 00:00:00 UTC), "1970-01-01T00:00:00Z"),
            (
                datetime!(2024-02-29 23:59:59.5 UTC),
                "2024-02-29T23:59:59.5Z",
            ),
            (
                datetime!(2024-01-02 03:04:05.123456789 UTC),
                "2024-01-02T03:04:05.123456789Z",
            ),
            (
                datetime!(2024-01-02 03:04:05.000000100 UTC),
                "2024-01-02T03:04:05.0000001Z",
            ),
            (
                datetime!(2024-01-02 03:04:05.120 +02:00),
                "2024-01-02T03:04:05.12+02:00",
            ),
            (
                datetime!(2024-01-02 03:04:05 -05:30),
                "2024-01-02T03:04:05-05:30",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(format_rfc3339_nano(t), want);
        }
    }

    #[test]
    fn system_time_is_utc_and_trimmed() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 250_000_000);
        let mut out = Vec::new();
        write_system_time_utc(&mut out, t);
        assert_eq!(out, b"2023-11-14T22:13:20.25Z");
    }
}
