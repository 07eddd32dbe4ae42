//! Parsing a device config document (YAML or JSON) app by app.
//!
//! A document that is not YAML/JSON, or whose top level is wrong, is refused
//! whole ([`ParseError`]). Inside `apps`, each entry is decoded on its own:
//! an app with an unknown field or a wrong type is *rejected* with its path
//! and the others are kept, so one bad app never stops the rest.

use serde_json::Value;
use thiserror::Error;

use crate::config::{AppConfig, DeviceConfig};
use crate::validate::{validate, Problem};

/// The whole document could not be used; the previous config must stay.
#[derive(Debug, Error)]
pub enum ParseError {
    /// Not YAML/JSON at all.
    #[error("device config is not valid YAML/JSON: {0}")]
    Syntax(String),
    /// The top level is not a device config.
    #[error("device config: {0}")]
    Shape(String),
    /// A device-level setting (not an app) is invalid.
    #[error("device config: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

/// Longest `uuid` of a rejected entry that is still reported as its UUID; a
/// longer one is treated as unreadable (the agent keys its status and store
/// record by it).
pub const MAX_REJECTED_UUID_BYTES: usize = 64;

/// Longest `display_name` of a rejected entry kept for its status (cut beyond).
pub const MAX_REJECTED_NAME_BYTES: usize = 64;

fn readable_uuid(uuid: &str) -> Option<String> {
    (uuid.len() <= MAX_REJECTED_UUID_BYTES).then(|| uuid.to_owned())
}

fn shown_name(name: &str) -> String {
    crate::validate::clip(name, MAX_REJECTED_NAME_BYTES)
}

/// An app entry that cannot be applied, with every reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedApp {
    /// Position in `apps`.
    pub index: usize,
    /// The app's UUID when the entry had a readable one (a string of at most
    /// [`MAX_REJECTED_UUID_BYTES`]), to report on its status.
    pub uuid: Option<String>,
    /// The app's display name when readable (cut to [`MAX_REJECTED_NAME_BYTES`]).
    pub display_name: Option<String>,
    /// What is wrong, each with a path such as `apps[2].resources.memory_kib`.
    pub problems: Vec<Problem>,
}

impl RejectedApp {
    /// One line naming the app and all its problems.
    pub fn summary(&self) -> String {
        let who = match (&self.display_name, &self.uuid) {
            (Some(n), Some(u)) => format!("app {n} ({u})"),
            (None, Some(u)) => format!("app {u}"),
            (Some(n), None) => format!("app {n}"),
            (None, None) => format!("apps[{}]", self.index),
        };
        let what: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        format!("{who} rejected: {}", what.join("; "))
    }
}

/// A parsed document: the apps that can be applied, and the ones that cannot.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The config with only the valid apps.
    pub config: DeviceConfig,
    /// Apps left out, with their problems.
    pub rejected: Vec<RejectedApp>,
}

/// Parses a YAML (or JSON, which is YAML) document and validates every app.
/// The document is bounded by [`crate::yaml::LIMITS`] (size, nodes and depth
/// after alias expansion); duplicate keys refuse it.
pub fn parse_device_config(text: &str) -> Result<Parsed, ParseError> {
    let value = crate::yaml::load_str(text, &crate::yaml::LIMITS)
        .map_err(|e| ParseError::Syntax(e.to_string()))?;
    from_value(value)
}

/// Same as [`parse_device_config`] for raw bytes: input that is not UTF-8 is
/// refused with the place of its first invalid byte.
pub fn parse_device_config_bytes(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let value = crate::yaml::load(bytes, &crate::yaml::LIMITS)
        .map_err(|e| ParseError::Syntax(e.to_string()))?;
    from_value(value)
}

/// Decodes `value` as `T`; an error names the field's path below `prefix`.
fn decode<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let full = match path.as_str() {
            "." => prefix.to_owned(),
            p if p.starts_with('[') || prefix.is_empty() => format!("{prefix}{p}"),
            p => format!("{prefix}.{p}"),
        };
        Problem::new(full, e.into_inner().to_string())
    })
}

/// `apps[i]` in a validation message counts valid apps only: name the entry
/// of the document instead.
fn renumber(message: &str, positions: &[usize]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("apps[") {
        let (head, tail) = rest.split_at(at + "apps[".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        match tail[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|i| positions.get(i))
        {
            Some(orig) if tail[digits..].starts_with(']') => out.push_str(&orig.to_string()),
            _ => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Same as [`parse_device_config`] for a JSON body (what the controller sends).
pub fn parse_device_config_json(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Syntax(e.to_string()))?;
    from_value(value)
}

fn from_value(value: Value) -> Result<Parsed, ParseError> {
    let Value::Object(mut top) = value else {
        return Err(ParseError::Shape("the document must be a mapping".into()));
    };
    // `apps:` with every entry commented out is null: no apps.
    let apps_value = match top.remove("apps") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(v) => v,
    };
    let Value::Array(entries) = apps_value else {
        return Err(ParseError::Shape("`apps` must be a list".into()));
    };
    // Everything but `apps` must decode strictly (unknown top-level keys refuse the document).
    top.insert("apps".into(), Value::Array(Vec::new()));
    let mut config: DeviceConfig = decode(Value::Object(top), "").map_err(|p| {
        ParseError::Shape(if p.path.is_empty() {
            p.message
        } else {
            p.to_string()
        })
    })?;

    let mut rejected = Vec::new();
    let mut positions = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let uuid = entry
            .get("uuid")
            .and_then(Value::as_str)
            .and_then(readable_uuid);
        let display_name = entry
            .get("display_name")
            .and_then(Value::as_str)
            .map(shown_name);
        match decode::<AppConfig>(entry, &format!("apps[{index}]")) {
            Ok(app) => {
                config.apps.push(app);
                positions.push(index);
            }
            Err(problem) => rejected.push(RejectedApp {
                index,
                uuid,
                display_name,
                problems: vec![problem],
            }),
        }
    }

    // Validation paths must name the position in the original document.
    let problems = validate(&config);
    let device_level: Vec<Problem> = problems
        .iter()
        .filter(|p| !p.path.starts_with("apps["))
        .cloned()
        .collect();
    if !device_level.is_empty() {
        return Err(ParseError::Invalid(device_level));
    }
    if problems.is_empty() {
        return Ok(Parsed { config, rejected });
    }
    let mut keep = Vec::new();
    for (i, app) in std::mem::take(&mut config.apps).into_iter().enumerate() {
        let index = positions[i];
        let prefix = format!("apps[{i}]");
        let mine: Vec<Problem> = problems
            .iter()
            .filter(|p| p.path == prefix || p.path.starts_with(&format!("{prefix}.")))
            .map(|p| {
                Problem::new(
                    p.path.replacen(&prefix, &format!("apps[{index}]"), 1),
                    renumber(&p.message, &positions),
                )
            })
            .collect();
        if mine.is_empty() {
            keep.push(app);
        } else {
            rejected.push(RejectedApp {
                index,
                uuid: readable_uuid(&app.uuid),
                display_name: Some(shown_name(&app.display_name)),
                problems: mine,
            });
        }
    }
    config.apps = keep;
    rejected.sort_by_key(|r| r.index);
    Ok(Parsed { config, rejected })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
generation: 3
apps:
  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10
    version: "3"
    display_name: one
    app_num: 1
    image: hello:latest
  - uuid: 2a9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f
    version: "1"
    display_name: two
    app_num: 2
    image: hello:latest
    resources: { memory_kib: 16, vcpus: 1 }
  - uuid: 3b9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f
    version: "1"
    display_name: three
    app_num: 3
    image: hello:latest
    colour: blue
"#;

    #[test]
    fn bad_apps_are_rejected_one_by_one() {
        let parsed = parse_device_config(GOOD).unwrap();
        assert_eq!(parsed.config.generation, 3);
        assert_eq!(parsed.config.apps.len(), 1);
        assert_eq!(parsed.config.apps[0].display_name, "one");
        assert_eq!(parsed.rejected.len(), 2);
        let two = &parsed.rejected[0];
        assert_eq!(two.index, 1);
        assert_eq!(two.display_name.as_deref(), Some("two"));
        assert_eq!(two.problems[0].path, "apps[1].resources.memory_kib");
        assert!(two.summary().contains("two"), "{}", two.summary());
        let three = &parsed.rejected[1];
        assert_eq!(three.index, 2);
        assert!(
            three.problems[0].message.contains("colour"),
            "{:?}",
            three.problems
        );
    }

    #[test]
    fn oversized_entries_are_rejected_alone_with_short_reports() {
        let big = "x".repeat(2_000_000);
        let entry = |n: u32, uuid: &str, name: &str, env: serde_json::Value| {
            serde_json::json!({
                "uuid": uuid, "version": "1", "display_name": name,
                "app_num": n, "image": "hello:latest", "env": env,
            })
        };
        let doc = serde_json::json!({ "generation": 1, "apps": [
            entry(1, "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10", "one", serde_json::json!({})),
            entry(2, "2a9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f", "two", serde_json::json!({ "BIG": big })),
            entry(3, &big, &big, serde_json::json!({})),
        ]});
        let parsed = parse_device_config_json(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(parsed.config.apps.len(), 1);
        assert_eq!(parsed.config.apps[0].display_name, "one");
        let two = &parsed.rejected[0];
        assert_eq!(
            two.problems,
            [Problem::new(
                "apps[1].env.BIG",
                "value is 2000000 bytes, more than the limit of 32768"
            )]
        );
        assert_eq!(
            two.summary(),
            "app two (2a9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f) rejected: apps[1].env.BIG: \
             value is 2000000 bytes, more than the limit of 32768"
        );
        let three = &parsed.rejected[1];
        assert_eq!(three.uuid, None, "a 2 MB uuid is not a readable UUID");
        assert_eq!(
            three.display_name.as_deref(),
            Some(format!("{}…", &big[..MAX_REJECTED_NAME_BYTES]).as_str())
        );
        assert!(three.problems.iter().any(|p| p.path == "apps[2].uuid"));
        assert!(three
            .problems
            .iter()
            .any(|p| p.path == "apps[2]" && p.message.contains("more than the limit of 131072")));
        assert!(three.summary().len() < 2048, "{}", three.summary());
    }

    #[test]
    fn unparsable_documents_are_refused_whole() {
        assert!(matches!(
            parse_device_config("generation: [").unwrap_err(),
            ParseError::Syntax(_)
        ));
        assert!(matches!(
            parse_device_config("- 1\n- 2").unwrap_err(),
            ParseError::Shape(_)
        ));
        let e = parse_device_config("generation: 1\nappz: []").unwrap_err();
        assert!(e.to_string().contains("appz"), "{e}");
        assert!(parse_device_config("generation: 1\napps: {}").is_err());
        let e = parse_device_config("generation: 1\nregistries: [{ host: 'a/b' }]").unwrap_err();
        assert!(e.to_string().contains("registries[0].host"), "{e}");
        let empty = parse_device_config("generation: 2\napps:\n").unwrap();
        assert!(empty.config.apps.is_empty());
    }

    fn entry(n: u32, uuid: &str, extra: &str) -> String {
        format!(
            "  - uuid: {uuid}\n    version: \"1\"\n    display_name: app{n}\n    app_num: {n}\n    image: hello:latest\n{extra}"
        )
    }

    #[test]
    fn type_errors_name_the_full_path_and_reject_only_that_app() {
        let doc = format!(
            "generation: 1\napps:\n{}{}{}{}",
            entry(1, "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10", ""),
            entry(2, "2a9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f", ""),
            entry(
                3,
                "3b9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f",
                "    resources: { memory_kib: x }\n"
            ),
            entry(4, "7", ""),
        );
        let parsed = parse_device_config(&doc).unwrap();
        assert_eq!(parsed.config.apps.len(), 2);
        assert_eq!(
            parsed.rejected[0].problems,
            [Problem::new(
                "apps[2].resources.memory_kib",
                "invalid type: string \"x\", expected u64"
            )]
        );
        let four = &parsed.rejected[1];
        assert_eq!((four.index, four.uuid.as_deref()), (3, None));
        assert_eq!(four.problems[0].path, "apps[3].uuid");
        assert!(
            four.problems[0]
                .message
                .starts_with("invalid type: integer `7`"),
            "{:?}",
            four.problems
        );
        let e = parse_device_config("generation: x\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("device config: generation: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn duplicates_name_the_entry_of_the_document() {
        let uuid = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10";
        let doc = format!(
            "generation: 1\napps:\n{}{}{}",
            entry(1, "[not, a, string]", ""),
            entry(2, uuid, ""),
            entry(3, uuid, ""),
        );
        let parsed = parse_device_config(&doc).unwrap();
        assert_eq!(parsed.config.apps.len(), 1);
        let dup = &parsed.rejected[1];
        assert_eq!(dup.index, 2);
        assert_eq!(
            dup.problems,
            [Problem::new("apps[2].uuid", "duplicate of apps[1].uuid")]
        );
    }

    #[test]
    fn duplicate_keys_refuse_the_document() {
        let doc = format!(
            "generation: 1\napps:\n{}",
            entry(
                1,
                "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10",
                "    app_num: 9\n"
            ),
        );
        let e = parse_device_config(&doc).unwrap_err();
        assert_eq!(
            e.to_string(),
            "device config is not valid YAML/JSON: line 8, column 5: duplicate key \"app_num\" \
             (first at line 6, column 5)"
        );
        let e = parse_device_config_bytes(b"generation: 1\napps: []\n# \xff\n").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("invalid UTF-8 at byte 25 (line 3, column 3)"),
            "{e}"
        );
    }

    #[test]
    fn json_and_yaml_agree() {
        let yaml = parse_device_config(GOOD).unwrap();
        let json = serde_json::to_vec(&yaml.config).unwrap();
        let again = parse_device_config_json(&json).unwrap();
        assert_eq!(again.config, yaml.config);
        assert!(again.rejected.is_empty());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../../../config/examples/device-config.yaml");
        let parsed = parse_device_config(text).unwrap();
        assert!(parsed.rejected.is_empty(), "{:#?}", parsed.rejected);
        assert_eq!(parsed.config.generation, 42);
        assert_eq!(parsed.config.apps.len(), 2);
        let gw = &parsed.config.apps[0];
        assert_eq!(gw.task_id(), "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10.3.1");
        assert_eq!(gw.resources.cpus.as_ref().unwrap().to_string(), "1");
        assert_eq!(gw.restart_policy.max_attempts, 20);
        assert_eq!(gw.volumes[0].mount_dir.as_deref(), Some("/data"));
    }
}
