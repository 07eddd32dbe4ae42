use std::time::{Duration, Instant};

use super::*;

/// Billion laughs: each level holds ten aliases of the one before.
pub(crate) fn laughs(levels: usize) -> String {
    let mut s = String::from("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for i in 1..levels {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        s.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    s
}

fn quick<T>(f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    out
}

#[test]
fn an_alias_bomb_is_refused_before_any_value_is_built() {
    let bomb = laughs(9);
    assert!(bomb.len() < 1000, "{}", bomb.len());
    let e = quick(|| load_str(&bomb, &LIMITS)).unwrap_err();
    assert!(matches!(e, YamlError::Limit { limit: 100_000, .. }), "{e}");
    assert!(e.to_string().contains("more nodes than allowed"), "{e}");
    // The 9th alias of line 5 (11111 nodes each) passes the limit.
    assert!(e.to_string().starts_with("line 5, column 45: "), "{e}");
}

#[test]
fn a_long_string_repeated_by_aliases_is_refused() {
    let big = "x".repeat(1 << 20);
    let refs = vec!["*s"; 20].join(", ");
    let doc = format!("s: &s {big}\nt: [{refs}]\n");
    let e = load_str(&doc, &LIMITS).unwrap_err();
    assert!(e.to_string().contains("more scalar bytes"), "{e}");
}

#[test]
fn deep_nesting_is_refused_at_once() {
    for doc in [
        "[".repeat(200_000),
        "a: {".repeat(50_000),
        (0..1000)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect::<String>(),
    ] {
        let e = quick(|| load_str(&doc, &LIMITS)).unwrap_err();
        // Flow nesting may already stop the parser's own recursion limit.
        let text = e.to_string();
        assert!(
            text.contains(
                "nested deeper than allowed (an alias counts the depth it repeats) (limit 64)"
            ) || (matches!(e, YamlError::Syntax { .. }) && text.contains("recursion limit")),
            "{}: {e}",
            &doc[..20]
        );
    }
    // Depth through aliases counts too.
    let mut doc =
        String::from("a: &a [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n");
    doc.push_str(&format!("b: {}*a{}\n", "[".repeat(40), "]".repeat(40)));
    let e = load_str(&doc, &LIMITS).unwrap_err();
    assert!(e.to_string().starts_with("line 2, column 44"), "{e}");
    // 64 levels are fine.
    let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
    load_str(&ok, &LIMITS).unwrap();
}

#[test]
fn duplicate_keys_are_refused_with_both_places() {
    let doc = "generation: 1\napps:\n  - uuid: a\n    env:\n      A: 1\n      B: 2\n      A: 3\n";
    let e = load_str(doc, &LIMITS).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 7, column 7: duplicate key \"A\" (first at line 5, column 7)"
    );
    let e = load_str("a: 1\nb: 2\n\"a\": 3\n", &LIMITS).unwrap_err();
    assert!(e.to_string().contains("duplicate key \"a\""), "{e}");
    let e = load_str("{\"x\": {\"k\": 1, \"k\": 2}}", &LIMITS).unwrap_err();
    assert!(e.to_string().starts_with("line 1, column 16"), "{e}");
    // An alias used as a key is its anchored text.
    let e = load_str("a: &k b\nm: {b: 1, *k : 2}\n", &LIMITS).unwrap_err();
    assert!(e.to_string().contains("duplicate key \"b\""), "{e}");
    // The same key in different mappings, or as a value, is fine.
    load_str("a: {k: 1}\nb: {k: 1}\nc: a\n", &LIMITS).unwrap();
}

#[test]
fn non_utf8_is_refused_with_its_place() {
    let mut bytes = b"generation: 1\napps:\n  - display_name: caf".to_vec();
    bytes.push(0xE9);
    bytes.extend_from_slice(b"\n");
    let e = load(&bytes, &LIMITS).unwrap_err();
    assert_eq!(
        e,
        YamlError::NotUtf8 {
            offset: 41,
            line: 3,
            column: 22
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid UTF-8 at byte 41 (line 3, column 22)"
    );
}

#[test]
fn oversized_input_is_refused() {
    let limits = Limits {
        max_bytes: 10,
        ..LIMITS
    };
    let e = load(b"generation: 1\n", &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the document is 14 bytes, more than the limit of 10"
    );
}

#[test]
fn ordinary_documents_load_as_before() {
    let doc = "base: &b {x: 1, y: \"2\"}\nuse: *b\nlist: [1, 2.5, true, ~, text]\n";
    let v = load_str(doc, &LIMITS).unwrap();
    assert_eq!(v["use"], serde_json::json!({"x": 1, "y": "2"}));
    assert_eq!(v["list"], serde_json::json!([1, 2.5, true, null, "text"]));
    assert!(matches!(
        load_str("a: [", &LIMITS).unwrap_err(),
        YamlError::Syntax { .. }
    ));
}
