//! The device certificate lifecycle on the controller
//! (`docs/certificates.md`): how long device certificates live, the clock
//! that decides validity (injectable: tests run a simulated month in
//! seconds), renewal over mutual TLS and revocation.

mod renew;
mod revoke;
pub mod signing;
pub mod verifier;

use std::time::Duration;

pub use outpost_api::Clock;
pub use renew::renew_handler;

use crate::pki::{Validity, DEVICE_CERT_DAYS};

/// How device certificates are issued and checked.
#[derive(Clone, Debug)]
pub struct CertPolicy {
    /// The clock of every validity decision (issuing, the TLS client
    /// verifier, the expiry shown by `device list`).
    pub clock: Clock,
    /// Lifetime of a device certificate (`serve --device-cert-lifetime`).
    pub device_lifetime: Duration,
}

impl Default for CertPolicy {
    fn default() -> Self {
        CertPolicy {
            clock: Clock::system(),
            device_lifetime: Duration::from_secs(
                u64::try_from(DEVICE_CERT_DAYS).unwrap_or(365) * 86_400,
            ),
        }
    }
}

impl CertPolicy {
    /// The time now, by the policy's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from(self.clock.now())
    }

    /// The validity of a device certificate issued now.
    pub fn device_validity(&self) -> Validity {
        let lifetime = time::Duration::try_from(self.device_lifetime)
            .unwrap_or(time::Duration::days(DEVICE_CERT_DAYS));
        Validity::starting(self.now(), lifetime)
    }

    /// `now` as RFC 3339.
    pub fn now_rfc3339(&self) -> String {
        self.now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// Parses a duration like `1h`, `90m`, `30d`, `1y`, `45s` or several of
/// them (`1d12h`): the `serve --device-cert-lifetime` syntax.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = |why: &str| format!("{text:?} is not a duration ({why}; e.g. 1h, 30d, 1y, 1d12h)");
    if t.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("a number must come first"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let secs = match unit {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "y" | "year" | "years" => 365 * 86_400,
            "" => return Err(bad("a unit (s, m, h, d, w, y) must follow the number")),
            _ => return Err(bad(&format!("unknown unit {unit:?}"))),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("too long"))?;
    }
    if total == 0 {
        return Err(bad("must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("1d12h").unwrap(),
            Duration::from_secs(129_600)
        );
        assert_eq!(
            parse_duration("1y").unwrap(),
            Duration::from_secs(31_536_000)
        );
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3 fortnights").is_err());
    }
}
