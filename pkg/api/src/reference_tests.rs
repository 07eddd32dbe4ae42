use super::*;

#[test]
fn parses_references() {
    let d = format!("sha256:{}", "a".repeat(64));
    type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let table: &[Row] = &[
        ("r.io/app", "r.io", "app", Some("latest"), None),
        (
            "r.io:5000/team/app:1.2",
            "r.io:5000",
            "team/app",
            Some("1.2"),
            None,
        ),
        ("localhost/a/b", "localhost", "a/b", Some("latest"), None),
        ("127.0.0.1:5000/x:v", "127.0.0.1:5000", "x", Some("v"), None),
        (
            "r.io/a__b/c-d--e/f.g_h",
            "r.io",
            "a__b/c-d--e/f.g_h",
            Some("latest"),
            None,
        ),
    ];
    for (text, reg, repo, tag, digest) in table {
        let r = Reference::parse(text).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (*reg, *repo),
            "{text}"
        );
        assert_eq!(r.tag.as_deref(), *tag, "{text}");
        assert_eq!(r.digest.as_deref(), *digest, "{text}");
        assert_eq!(
            r.to_string().trim_end_matches(":latest"),
            text.trim_end_matches(":latest")
        );
    }
    let r = Reference::parse(&format!("r.io:5000/app@{d}")).unwrap();
    assert_eq!(r.digest.as_deref(), Some(d.as_str()));
    assert_eq!(r.tag, None);
    assert_eq!(r.object(), d);
    let r = Reference::parse(&format!("r.io/app:1@{d}")).unwrap();
    assert_eq!((r.tag.as_deref(), r.object()), (Some("1"), d.as_str()));
}

#[test]
fn rejects_bad_references() {
    for bad in [
        "hello:latest",
        "app",
        "r.io/App",
        "r.io/app:",
        "r.io/app:.hidden",
        "r.io/app:-x",
        "r.io/app@sha256:abc",
        "r.io/app@md5:0123",
        "r.io/",
        "r.io/../x",
        "r.io/a/./b",
        "r.io/a//b",
        "r.io/a/",
        "r.io/-a",
        "r.io/a..b",
        "r.io/a___b",
        "r/o.o?/x",
        "../hello:latest",
        "a..b/x",
        ".r.io/x",
        "r.io:/x",
        "r.io:50a/x",
        "[zz]:5000/x",
    ] {
        assert!(Reference::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        Reference::parse("[::1]:5000/x").unwrap().registry,
        "[::1]:5000"
    );
    let long_tag = format!("r.io/a:{}", "t".repeat(MAX_TAG_BYTES + 1));
    assert!(Reference::parse(&long_tag).is_err());
    assert!(names_registry("r.io:5000/a"));
    assert!(!names_registry("hello:latest"));
    assert!(!names_registry("team/app"));
}

#[test]
fn local_names_are_one_plain_path_component() {
    let l = LocalName::parse("hello:latest").unwrap();
    assert_eq!(
        (l.name.as_str(), l.tag.as_deref()),
        ("hello", Some("latest"))
    );
    assert_eq!(LocalName::parse("vnc-labelled").unwrap().tag, None);
    for bad in [
        "..:latest",
        "..",
        ".:latest",
        ".hidden:1",
        "team/app:1",
        "../hello:latest",
        "Hello:latest",
        "hello:",
        "hello@sha256:abc",
        "",
        ":latest",
        "a\0b",
    ] {
        let e = LocalName::parse(bad).unwrap_err();
        assert!(check(bad).is_err(), "{bad}");
        assert!(!e.problem.is_empty(), "{bad}");
    }
    let e = check("..:latest").unwrap_err().to_string();
    assert!(
        e.contains("\"..:latest\"") && e.contains("local image name"),
        "{e}"
    );
}
