//! An operator's device config document, checked before it is signed.
//!
//! A document-level problem refuses the upload (nothing changes); apps the
//! agent cannot use are reported as warnings but stay in the document, so
//! the device reports them on its side too.

use serde_json::Value;

/// Largest document accepted, bytes of YAML.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// A document ready to sign.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The document as JSON, with `generation` set to the assigned one.
    pub document: Value,
    /// One line per app the agent will reject.
    pub warnings: Vec<String>,
    /// Number of app entries (valid or not).
    pub apps: usize,
}

/// Parses `text` (YAML or JSON), sets `generation`, and validates it with
/// [`outpost_api::parse_device_config_json`]. The error names the problem.
pub fn prepare(text: &str, generation: u64) -> Result<Prepared, String> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the document is {} bytes, more than the {MAX_DOCUMENT_BYTES} allowed",
            text.len()
        ));
    }
    let mut document = load(text)?;
    let Value::Object(top) = &mut document else {
        return Err("device config: the document must be a mapping".into());
    };
    top.insert("generation".into(), Value::from(generation));
    let bytes = serde_json::to_vec(&document).map_err(|e| e.to_string())?;
    let parsed = outpost_api::parse_device_config_json(&bytes).map_err(|e| e.to_string())?;
    Ok(Prepared {
        warnings: parsed.rejected.iter().map(|r| r.summary()).collect(),
        apps: parsed.config.apps.len() + parsed.rejected.len(),
        document,
    })
}

/// The `generation` a document's author wrote, if any (for messages).
pub fn written_generation(text: &str) -> Option<u64> {
    let value = load(text).ok()?;
    value.get("generation")?.as_u64()
}

/// The shared bounded loader (size, nodes, depth and alias expansion
/// bounded before any value is built; duplicate keys refused).
pub(crate) fn load(text: &str) -> Result<Value, String> {
    let limits = outpost_api::yaml::Limits {
        max_bytes: MAX_DOCUMENT_BYTES,
        ..outpost_api::yaml::LIMITS
    };
    outpost_api::yaml::load_str(text, &limits)
        .map_err(|e| format!("device config is not valid YAML/JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"
generation: 99
apps:
  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10
    version: "1"
    display_name: one
    app_num: 1
    image: hello:latest
  - uuid: 3b9d7f3b-5c1e-4b8a-9f6d-7e0c2b4a6d8f
    version: "1"
    display_name: two
    app_num: 2
    image: hello:latest
    colour: blue
"#;

    #[test]
    fn generation_is_assigned_and_bad_apps_kept() {
        let p = prepare(DOC, 7).unwrap();
        assert_eq!(p.document["generation"], 7);
        assert_eq!(p.apps, 2);
        assert_eq!(p.document["apps"].as_array().unwrap().len(), 2);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("two"), "{:?}", p.warnings);
        assert_eq!(written_generation(DOC), Some(99));
    }

    #[test]
    fn type_errors_warn_with_the_full_path() {
        let doc = DOC.replace("colour: blue", "resources: { memory_kib: x }");
        let p = prepare(&doc, 1).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].ends_with(
                "rejected: apps[1].resources.memory_kib: invalid type: string \"x\", expected u64"
            ),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn missing_generation_is_fine() {
        let p = prepare("apps: []\n", 1).unwrap();
        assert_eq!(p.document["generation"], 1);
        assert_eq!(p.apps, 0);
    }

    #[test]
    fn document_level_errors_refuse() {
        for (doc, needle) in [
            ("apps: [\n", "not valid YAML"),
            ("- 1\n- 2\n", "mapping"),
            ("apps: 3\n", "list"),
            ("apps: []\nflavour: x\n", "flavour"),
            ("apps: []\napps: []\n", "line 2, column 1: duplicate key \"apps\""),
            (
                "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                 c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                 e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
                "more nodes than allowed",
            ),
            ("[".repeat(100_000).as_str(), "line 1, column "),
        ] {
            let e = prepare(doc, 1).unwrap_err();
            assert!(e.contains(needle), "{doc:?}: {e}");
        }
    }
}
