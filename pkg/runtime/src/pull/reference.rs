//! Image references: `host[:port]/repo[:tag|@digest]`.

use super::error::PullError;

/// A parsed registry reference. The default tag is `latest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry host with optional port (`registry.example:5000`).
    pub registry: String,
    /// Repository path (`team/app`).
    pub repository: String,
    /// Tag, when the reference has no digest (or both).
    pub tag: Option<String>,
    /// `sha256:<hex>` digest, when given.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `reference`; the first path component must name a host
    /// (contain `.` or `:`, or be `localhost`).
    pub fn parse(reference: &str) -> Result<Reference, PullError> {
        let bad = |problem: &str| PullError::Reference {
            reference: reference.to_owned(),
            problem: problem.to_owned(),
        };
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => {
                let ok = d
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !ok {
                    return Err(bad("digest must be sha256:<64 hex>"));
                }
                (r, Some(d.to_owned()))
            }
            None => (reference, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .filter(|(h, _)| names_host(h))
            .ok_or_else(|| bad("no registry host (expected host[:port]/repo[:tag])"))?;
        // A tag is after the last ':' of the last path component.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(bad("repository must be lowercase [a-z0-9._-/]"));
        }
        if let Some(t) = &tag {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(bad("tag must be [A-Za-z0-9._-]{1,128}"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_owned())
        } else {
            tag
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// What to ask the manifests endpoint for: the digest if any, else the tag.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

/// True when `reference` starts with a registry host (so it is pulled, not
/// imported from a local layout).
pub fn names_registry(reference: &str) -> bool {
    reference
        .split_once('/')
        .is_some_and(|(h, _)| names_host(h))
}

fn names_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
            "r.io/app@sha256:abc",
            "r.io/",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(names_registry("r.io:5000/a"));
        assert!(!names_registry("hello:latest"));
        assert!(!names_registry("team/app"));
    }
}
