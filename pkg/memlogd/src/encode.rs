//! Encodes a log entry as the JSON line linuxkit's memlogd writes
//! (`json.NewEncoder(conn).Encode(&LogEntry{…})` in Go ≥ 1.22).
//!
//! Go escapes `"` and `\`, writes `\n \r \t \b \f` as such and other control
//! characters as `\u00xx` (lower-case hex), escapes `<`, `>`, `&` (HTML-safe
//! default) and U+2028/U+2029, and leaves everything else, including DEL and
//! non-ASCII, as raw UTF-8.

use std::time::SystemTime;

use crate::timefmt::write_system_time_utc;

/// Appends one complete entry line, newline included.
pub(crate) fn encode_entry(out: &mut Vec<u8>, time: SystemTime, source: &str, msg: &str) {
    let prefix = entry_prefix(time, source);
    encode_with_prefix(out, &prefix, msg);
}

/// Everything before the message: `{"time":"…","source":"…","msg":`. Lines
/// read together share their receive time and source, so this is built once
/// per read.
pub(crate) fn entry_prefix(time: SystemTime, source: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + source.len());
    out.extend_from_slice(b"{\"time\":\"");
    write_system_time_utc(&mut out, time);
    out.extend_from_slice(b"\",\"source\":");
    write_json_string(&mut out, source);
    out.extend_from_slice(b",\"msg\":");
    out
}

/// Appends `prefix`, the message and the closing `}` and newline.
pub(crate) fn encode_with_prefix(out: &mut Vec<u8>, prefix: &[u8], msg: &str) {
    out.reserve(prefix.len() + msg.len() + 4);
    out.extend_from_slice(prefix);
    write_json_string(out, msg);
    out.extend_from_slice(b"}\n");
}

/// Appends `s` as a quoted JSON string escaped as Go's `encoding/json` does.
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            0x00..=0x1f | b'<' | b'>' | b'&' => Some(b""),
            // U+2028 / U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xe2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xa8) | Some(0xa9)) =>
            {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
                continue;
            }
            _ => None,
        };
        if let Some(esc) = escape {
            out.extend_from_slice(&bytes[start..i]);
            if esc.is_empty() {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(esc);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn enc(s: &str) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_like_go() {
        let cases = [
            ("plain", r#""plain""#),
            ("a\"b\\c", r#""a\"b\\c""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{1}\u{1b}\u{1f}", r#""\u0001\u001b\u001f""#),
            (
                "<a href=\"x\">&</a>",
                r#""\u003ca href=\"x\"\u003e\u0026\u003c/a\u003e""#,
            ),
            ("\u{2028}x\u{2029}", r#""\u2028x\u2029""#),
            ("héllo ✓ \u{7f} \u{fffd}", "\"héllo ✓ \u{7f} \u{fffd}\""),
            ("", r#""""#),
        ];
        for (input, want) in cases {
            assert_eq!(enc(input), want, "input {input:?}");
            // Whatever we write must be valid JSON decoding back to the input.
            let back: String = serde_json::from_str(&enc(input)).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn entry_line_layout() {
        let mut out = Vec::new();
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 1_000);
        encode_entry(&mut out, t, "app;1", "hi");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2023-11-14T22:13:20.000001Z\",\"source\":\"app;1\",\"msg\":\"hi\"}\n"
        );
    }
}
