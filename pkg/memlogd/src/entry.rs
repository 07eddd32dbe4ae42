//! The log entry as clients see it, and `logread`'s text format.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::timefmt::format_rfc3339_nano;

/// One log line as memlogd serves it on the query socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogEntry {
    /// When memlogd received the line.
    #[serde(deserialize_with = "de_rfc3339")]
    pub time: OffsetDateTime,
    /// Stream name the line was registered under.
    pub source: String,
    /// The line, without its newline, possibly truncated.
    pub msg: String,
}

impl LogEntry {
    /// Parses one JSON line as sent by memlogd.
    pub fn from_json(line: &str) -> serde_json::Result<Self> {
        serde_json::from_str(line)
    }
}

/// linuxkit `logread`'s format: `<RFC3339Nano>;<source with ; escaped>;<msg>`.
impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};{};{}",
            format_rfc3339_nano(self.time),
            escape_source(&self.source),
            self.msg
        )
    }
}

/// Escapes `;` in a source name as `\;` (as linuxkit's `logread` does; other
/// characters, backslashes included, are left alone).
pub fn escape_source(source: &str) -> Cow<'_, str> {
    if source.contains(';') {
        Cow::Owned(source.replace(';', "\\;"))
    } else {
        Cow::Borrowed(source)
    }
}

fn de_rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = Cow::<str>::deserialize(d)?;
    OffsetDateTime::parse(&s, &Rfc3339).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_semicolons_only() {
        assert_eq!(escape_source("plain"), "plain");
        assert_eq!(escape_source("a;b;;c"), "a\\;b\\;\\;c");
        assert_eq!(escape_source("back\\slash"), "back\\slash");
        assert_eq!(escape_source(""), "");
    }

    #[test]
    fn parses_and_prints_logread_format() {
        let e = LogEntry::from_json(
            r#"{"time":"2024-05-06T07:08:09.1Z","source":"a;b","msg":"x;y \u003cz\u003e"}"#,
        )
        .unwrap();
        assert_eq!(e.to_string(), "2024-05-06T07:08:09.1Z;a\\;b;x;y <z>");
        let e = LogEntry::from_json(r#"{"time":"2024-05-06T07:08:09Z","source":"s","msg":""}"#)
            .unwrap();
        assert_eq!(e.to_string(), "2024-05-06T07:08:09Z;s;");
    }

    #[test]
    fn rejects_bad_time() {
        assert!(LogEntry::from_json(r#"{"time":"yesterday","source":"s","msg":""}"#).is_err());
    }
}
