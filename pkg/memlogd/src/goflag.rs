//! A command-line parser with the semantics of Go's `flag` package, so the
//! tools accept exactly what linuxkit's do: `-flag`, `--flag`, `-flag=value`,
//! `-flag value` (not for booleans: `-flag=false`), parsing stops at the first
//! non-flag argument or after `--`, `-h`/`-help` asks for usage.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::Duration;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-name` or `-name=true|false`.
    Bool,
    /// `-name value` or `-name=value`; `type_name` is shown in the usage.
    Value(&'static str),
}

/// One flag definition.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// Bool or value.
    pub kind: Kind,
    /// Default shown in the usage (empty: not shown).
    pub default: &'static str,
    /// One-line description.
    pub help: &'static str,
}

/// Why parsing stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h` or `-help` was given: print usage, exit 0.
    Help,
    /// Anything else: print the message and usage, exit 2.
    Bad(String),
}

/// Parsed flags plus the remaining positional arguments.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, String>,
    /// Arguments after the flags.
    pub rest: Vec<OsString>,
}

/// Parses `args` (without the program name) against `flags`.
pub fn parse(
    flags: &[Flag],
    args: impl IntoIterator<Item = OsString>,
) -> Result<Parsed, FlagError> {
    let mut parsed = Parsed::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let s = arg.to_string_lossy().into_owned();
        if s.len() < 2 || !s.starts_with('-') {
            parsed.rest.push(arg);
            break;
        }
        if s == "--" {
            break;
        }
        let body = s.strip_prefix("--").unwrap_or(&s[1..]);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(FlagError::Bad(format!("bad flag syntax: {s}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Bad(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (Kind::Bool, Some(v)) => match parse_bool(&v) {
                Some(b) => b.to_string(),
                None => {
                    return Err(FlagError::Bad(format!(
                        "invalid boolean value {v:?} for -{name}"
                    )))
                }
            },
            (Kind::Value(_), Some(v)) => v,
            (Kind::Value(_), None) => match it.next() {
                Some(v) => v.to_string_lossy().into_owned(),
                None => return Err(FlagError::Bad(format!("flag needs an argument: -{name}"))),
            },
        };
        parsed.values.insert(flag.name, value);
    }
    parsed.rest.extend(it);
    Ok(parsed)
}

impl Parsed {
    /// The raw value of a flag that was given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A boolean flag (false when absent).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name) == Some("true")
    }

    /// An integer flag, or `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, FlagError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_int(v).ok_or_else(|| {
                FlagError::Bad(format!("invalid value {v:?} for flag -{name}: parse error"))
            }),
        }
    }

    /// A non-negative size flag, or `default` when absent.
    pub fn size(&self, name: &str, default: usize) -> Result<usize, FlagError> {
        let v = self.int(name, default as i64)?;
        usize::try_from(v)
            .map_err(|_| FlagError::Bad(format!("invalid value {v} for flag -{name}: negative")))
    }

    /// A Go duration flag (`300ms`, `2s`, `1m30s`), or `default` when absent.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, FlagError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => parse_duration(v).ok_or_else(|| {
                FlagError::Bad(format!("invalid value {v:?} for flag -{name}: parse error"))
            }),
        }
    }
}

/// Go's `flag` usage text.
pub fn usage(program: &str, flags: &[Flag], synopsis: &str) -> String {
    let mut out = format!("Usage of {program}:{synopsis}\n");
    let mut sorted: Vec<&Flag> = flags.iter().collect();
    sorted.sort_by_key(|f| f.name);
    for f in sorted {
        let _ = write!(out, "  -{}", f.name);
        if let Kind::Value(t) = f.kind {
            let _ = write!(out, " {t}");
        }
        let _ = write!(out, "\n    \t{}", f.help);
        if !f.default.is_empty() {
            let _ = write!(out, " (default {})", f.default);
        }
        out.push('\n');
    }
    out
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Decimal, or `0x`/`0o`/`0b` prefixed, optionally signed (as `ParseInt(v, 0, 64)`).
fn parse_int(v: &str) -> Option<i64> {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b)
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let body = body.replace('_', "");
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let n = i64::from_str_radix(&body, radix).ok()?;
    Some(if neg { -n } else { n })
}

/// Go's `time.ParseDuration` for non-negative values.
pub fn parse_duration(v: &str) -> Option<Duration> {
    if v == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = v.strip_prefix('+').unwrap_or(v);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag {
            name: "socket",
            kind: Kind::Value("string"),
            default: "/run/x.sock",
            help: "socket",
        },
        Flag {
            name: "f",
            kind: Kind::Bool,
            default: "",
            help: "follow",
        },
        Flag {
            name: "max-lines",
            kind: Kind::Value("int"),
            default: "5000",
            help: "lines",
        },
    ];

    fn p(args: &[&str]) -> Result<Parsed, FlagError> {
        parse(FLAGS, args.iter().map(OsString::from))
    }

    #[test]
    fn go_flag_forms() {
        for args in [
            &["-socket", "/a", "-max-lines", "7"][..],
            &["-socket=/a", "-max-lines=7"],
            &["--socket", "/a", "--max-lines=7"],
        ] {
            let got = p(args).unwrap();
            assert_eq!(got.get("socket"), Some("/a"));
            assert_eq!(got.int("max-lines", 1).unwrap(), 7);
            assert!(!got.flag("f"));
        }
    }

    #[test]
    fn bools_take_no_separate_value() {
        let got = p(&["-f", "false"]).unwrap();
        assert!(got.flag("f"));
        assert_eq!(got.rest, [OsString::from("false")]);
        assert!(!p(&["-f=false"]).unwrap().flag("f"));
        assert!(p(&["-f=0"]).unwrap().get("f") == Some("false"));
        assert!(matches!(p(&["-f=maybe"]), Err(FlagError::Bad(_))));
    }

    #[test]
    fn stops_at_first_positional_or_double_dash() {
        let got = p(&["-f", "cmd", "-socket", "x"]).unwrap();
        assert_eq!(got.rest, ["cmd", "-socket", "x"].map(OsString::from));
        let got = p(&["--", "-f"]).unwrap();
        assert!(!got.flag("f"));
        assert_eq!(got.rest, [OsString::from("-f")]);
        let got = p(&["-", "x"]).unwrap();
        assert_eq!(got.rest, ["-", "x"].map(OsString::from));
    }

    #[test]
    fn errors_and_help() {
        assert_eq!(p(&["-h"]).unwrap_err(), FlagError::Help);
        assert_eq!(p(&["--help"]).unwrap_err(), FlagError::Help);
        assert!(matches!(p(&["-nope"]), Err(FlagError::Bad(m)) if m.contains("-nope")));
        assert!(
            matches!(p(&["-socket"]), Err(FlagError::Bad(m)) if m.contains("needs an argument"))
        );
        assert!(matches!(p(&["---x"]), Err(FlagError::Bad(_))));
        assert!(p(&["-max-lines", "x"])
            .unwrap()
            .int("max-lines", 0)
            .is_err());
        // a value may look like a flag
        assert_eq!(p(&["-socket", "-f"]).unwrap().get("socket"), Some("-f"));
    }

    #[test]
    fn ints_like_parseint_base0() {
        assert_eq!(parse_int("42"), Some(42));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("1_000"), Some(1000));
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("1k"), None);
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn usage_lists_flags_sorted() {
        let u = usage("logread", FLAGS, "");
        assert!(u.starts_with("Usage of logread:\n  -f\n"));
        assert!(u.contains("  -socket string\n    \tsocket (default /run/x.sock)\n"));
    }
}
