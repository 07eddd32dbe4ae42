//! The old agent's persistent layout: container dirs
//! `<persist>/runx/pods/prepared/<SHA>-<appUUID>[#<purge>]` and the user
//! containerd root `<persist>/containerd`.

use std::path::{Path, PathBuf};

use outpost_runtime::Layout;

/// Where the old agent kept prepared container dirs.
pub fn prepared_dir(layout: &Layout) -> PathBuf {
    layout.persist().join("runx/pods/prepared")
}

/// Where the old agent's user containerd kept its root.
pub fn old_containerd_root(layout: &Layout) -> PathBuf {
    layout.persist().join("containerd")
}

/// A parsed old container dir name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldContainerDir {
    /// The image SHA prefix (hex).
    pub sha: String,
    /// The app UUID (lower-case, hyphenated).
    pub app_uuid: String,
    /// The purge counter from the `#<purge>` suffix; 0 when absent.
    pub purge: u64,
}

/// Parses `<SHA>-<appUUID>[#<purge>]`; `None` for any other name.
pub fn parse_old_name(name: &str) -> Option<OldContainerDir> {
    let (base, purge) = match name.rsplit_once('#') {
        Some((b, p)) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => {
            (b, p.parse().ok()?)
        }
        Some(_) => return None,
        None => (name, 0),
    };
    const UUID_LEN: usize = 36;
    if base.len() < UUID_LEN + 2 || !base.is_char_boundary(base.len() - UUID_LEN) {
        return None;
    }
    let (head, uuid) = base.split_at(base.len() - UUID_LEN);
    let sha = head.strip_suffix('-')?;
    if sha.is_empty() || !sha.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let parsed = uuid::Uuid::try_parse(uuid).ok()?;
    if parsed.hyphenated().to_string() != uuid.to_ascii_lowercase() {
        return None;
    }
    Some(OldContainerDir {
        sha: sha.to_owned(),
        app_uuid: uuid.to_ascii_lowercase(),
        purge,
    })
}

/// The basename of `p` as text (empty for `/`).
pub fn basename(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10";

    #[test]
    fn parses_old_names() {
        let cases: &[(&str, Option<(&str, u64)>)] = &[
            (&format!("abc123-{U}"), Some(("abc123", 0))),
            (&format!("abc123-{U}#4"), Some(("abc123", 4))),
            (&format!("ABC-{}", U.to_uppercase()), Some(("ABC", 0))),
            (U, None),
            (&format!("-{U}"), None),
            (&format!("xyz-{U}"), None),
            (&format!("abc-{U}#"), None),
            (&format!("abc-{U}#x"), None),
            (&format!("abc-{U}.tmp"), None),
            ("abc-not-a-uuid-at-all-not-a-uuid-at-all", None),
        ];
        for (name, want) in cases {
            let got = parse_old_name(name).map(|o| {
                assert_eq!(o.app_uuid, U);
                (o.sha, o.purge)
            });
            assert_eq!(got, want.map(|(s, p)| (s.to_owned(), p)), "name {name}");
        }
    }
}
