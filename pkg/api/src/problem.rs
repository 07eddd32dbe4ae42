//! [`Problem`], one thing wrong in a config, and the helpers every validator
//! uses to write one (`clip`, `quoted`, `is_uuid`). A leaf: the validators
//! (`validate_*`, `baseos`, `registry`) and the orchestrating `validate`
//! depend on it, it depends on none of them. Public through
//! [`crate::validate`].

use std::fmt;

/// Longest problem path kept (an over-long env name is shown cut).
pub const MAX_PROBLEM_PATH_BYTES: usize = 512;
/// Longest problem message kept: a message never carries a whole oversized
/// value into statuses, logs and the agent's records.
pub const MAX_PROBLEM_MESSAGE_BYTES: usize = 1024;
/// Most bytes of a configured value a message quotes.
pub const MAX_QUOTED_BYTES: usize = 64;

/// One thing wrong in a config, at a path like `apps[2].memory_kib`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: `apps[2].resources.memory_kib`.
    pub path: String,
    /// What is wrong and, where possible, what is expected.
    pub message: String,
}

impl Problem {
    /// A problem at `path`; path and message are cut to
    /// [`MAX_PROBLEM_PATH_BYTES`] and [`MAX_PROBLEM_MESSAGE_BYTES`].
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: clip(&path.into(), MAX_PROBLEM_PATH_BYTES),
            message: clip(&message.into(), MAX_PROBLEM_MESSAGE_BYTES),
        }
    }
}

/// `s` cut to at most `max` bytes (on a character boundary) with `…`
/// appended when something was cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A configured value as a message quotes it: Debug-quoted, cut to
/// [`MAX_QUOTED_BYTES`].
pub(crate) fn quoted(s: &str) -> String {
    format!("{:?}", clip(s, MAX_QUOTED_BYTES))
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// True for the canonical textual UUID form (any version, either case).
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}
