//! Image references, parsed without I/O: registry references
//! (`host[:port]/repo[:tag|@digest]`, pulled) and local names
//! (`name[:tag|@digest]`, imported from a directory of OCI layouts).
//!
//! One parser serves config validation (`apps[N].image`) and the runtime's
//! pulls (`outpost_runtime::pull` re-exports [`Reference`]).

use std::fmt;

/// A reference that does not parse: the text (cut) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("image reference {reference:?}: {problem}")]
pub struct ReferenceError {
    /// The text given, cut to 256 bytes.
    pub reference: String,
    /// What is wrong.
    pub problem: String,
}

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

/// A local image name: one plain path component (the layout directory
/// under `--images`) with an optional tag and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalName {
    /// The layout directory name (`hello`); never `.`, `..` or with `/`.
    pub name: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// `sha256:<hex>` digest, if given.
    pub digest: Option<String>,
}

/// Longest tag accepted (OCI distribution spec).
pub const MAX_TAG_BYTES: usize = 128;

struct Parts<'a> {
    path: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

fn bad(reference: &str, problem: &str) -> ReferenceError {
    ReferenceError {
        reference: crate::problem::clip(reference, 256),
        problem: problem.to_owned(),
    }
}

/// Splits `path[:tag][@digest]` and checks the tag and digest.
fn split(reference: &str) -> Result<Parts<'_>, ReferenceError> {
    let rest = reference;
    let (rest, digest) = match rest.split_once('@') {
        Some((r, d)) => {
            let ok = d
                .strip_prefix("sha256:")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(bad(reference, "digest must be sha256:<64 hex>"));
            }
            (r, Some(d))
        }
        None => (rest, None),
    };
    // A tag is after the last ':' of the last path component.
    let (path, tag) = match rest.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (rest, None),
    };
    if let Some(t) = tag {
        let first_ok = t
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !first_ok
            || t.len() > MAX_TAG_BYTES
            || !t
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad(
                reference,
                "tag must be [A-Za-z0-9_][A-Za-z0-9._-]{0,127}",
            ));
        }
    }
    Ok(Parts { path, tag, digest })
}

/// True for one repository path component: `[a-z0-9]+` groups joined by
/// `.`, `_`, `__` or `-`s (so never empty, `.` or `..`).
pub fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

impl Reference {
    /// Parses `reference`; the first path component must name a host
    /// (contain `.` or `:`, or be `localhost`).
    pub fn parse(reference: &str) -> Result<Reference, ReferenceError> {
        let Parts { path, tag, digest } = split(reference)?;
        let (registry, repository) = path
            .split_once('/')
            .filter(|(h, _)| names_host(h))
            .ok_or_else(|| {
                bad(
                    reference,
                    "no registry host (expected host[:port]/repo[:tag])",
                )
            })?;
        if !is_registry_host(registry) {
            return Err(bad(
                reference,
                "registry host must be a host name or address with an optional :port",
            ));
        }
        if !repository.split('/').all(is_path_component) {
            return Err(bad(
                reference,
                "repository must be lowercase components [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'",
            ));
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_owned()),
            (t, _) => t.map(str::to_owned),
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest: digest.map(str::to_owned),
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

impl LocalName {
    /// Parses a reference that names no registry host: it must be one
    /// lowercase path component (it is a directory name under `--images`).
    pub fn parse(reference: &str) -> Result<LocalName, ReferenceError> {
        let Parts { path, tag, digest } = split(reference)?;
        if path.contains('/') {
            return Err(bad(
                reference,
                "a local image name is one path component (use host[:port]/repo[:tag] to pull from a registry)",
            ));
        }
        if !is_path_component(path) {
            return Err(bad(
                reference,
                "local image name must be lowercase [a-z0-9] joined by '.', '_', '__' or '-'",
            ));
        }
        Ok(LocalName {
            name: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }
}

/// Checks `reference` the way the agent will use it: as a registry
/// reference when it names a host, else as a local name.
pub fn check(reference: &str) -> Result<(), ReferenceError> {
    if names_registry(reference) {
        Reference::parse(reference).map(drop)
    } else {
        LocalName::parse(reference).map(drop)
    }
}

/// True when `reference` starts with a registry host (so it is pulled, not
/// imported from a local layout).
pub fn names_registry(reference: &str) -> bool {
    reference
        .split_once('/')
        .is_some_and(|(h, _)| names_host(h))
}

/// True for `host[:port]`: DNS labels (`[A-Za-z0-9-]+` joined by single
/// dots) or a bracketed IPv6 address, and a decimal port.
fn is_registry_host(h: &str) -> bool {
    let (host, port) = match h.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                match rest {
                    "" => return true,
                    r => ("", r.strip_prefix(':').unwrap_or("x")),
                }
            }
            None => return false,
        },
        None => match h.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => (h, "0"),
        },
    };
    let port_ok = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
    let host_ok = host.is_empty() && h.starts_with('[')
        || host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    port_ok && host_ok
}

fn names_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
#[path = "reference_tests.rs"]
mod tests;
