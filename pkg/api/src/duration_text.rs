//! Durations written as text: `10s`, `500ms`, `2m`, `1h`, or a plain number of seconds.
//! A leaf, shared by the config types (`config`, `baseos`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `10s`, `500ms`, `2m`, `1h`, `1m30s` or `10` (seconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("{text:?} is not a duration (e.g. 10s, 500ms, 2m)"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Formats as seconds or milliseconds (`10s`, `1500ms`).
pub fn format(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// serde: serialise as text.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// serde: accept text or a number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Secs(u64),
        Text(String),
    }
    match Form::deserialize(d)? {
        Form::Secs(s) => Ok(Duration::from_secs(s)),
        Form::Text(t) => parse(&t).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let p = parse;
        assert_eq!(p("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(p("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(p("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(p("7").unwrap(), Duration::from_secs(7));
        assert!(p("10 parsecs").is_err());
        assert!(p("s").is_err());
        assert!(p("").is_err());
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }
}
