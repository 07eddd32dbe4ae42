//! HTML helpers: escaping (every device-supplied string is hostile) and the
//! page frame.

use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (device names may hold anything).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The page frame: title, stylesheet, script, header with logout (when a
/// session's CSRF token is given) and `body`.
pub fn page(title: &str, csrf: Option<&str>, body: &str) -> String {
    let logout = csrf.map_or(String::new(), |csrf| {
        format!(
            r#"<form class="logout" method="post" action="/console/logout"><input type="hidden" name="csrf" value="{}"><button id="logout" type="submit">Log out</button></form>"#,
            escape(csrf)
        )
    });
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{} · Outpost controller</title>
<link rel="stylesheet" href="/console/static/console.css">
<script src="/console/static/console.js" defer></script></head>
<body><header><a href="/console/devices">Outpost controller</a>{logout}</header>
<main>{body}</main></body></html>
"#,
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_strings_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(url_segment("a b/../c"), "a%20b%2F..%2Fc");
    }
}
