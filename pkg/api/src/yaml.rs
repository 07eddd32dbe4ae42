//! The one YAML/JSON loader for device config documents (agent and controller).
//!
//! Before any value is built, a pre-pass over the YAML event stream
//! (`saphyr-parser`) bounds what the document *expands to*: every node
//! counts, and an alias counts the nodes, scalar bytes and depth of the
//! subtree it repeats, so a few kilobytes of nested anchors (billion laughs)
//! or of `[[[[…` are refused in microseconds, with the line and column where
//! the limit was passed. The same pass refuses duplicate mapping keys (YAML
//! would otherwise silently keep the last value) and input that is not UTF-8.
//! Only a document that passed is decoded (by `serde_yaml_ng`).

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScanError};
use serde_json::Value;
use thiserror::Error;

/// Bounds on a document and on what it expands to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input, bytes.
    pub max_bytes: usize,
    /// Most nodes (scalars, sequences, mappings) after alias expansion.
    pub max_nodes: u64,
    /// Deepest nesting of sequences/mappings after alias expansion.
    pub max_depth: usize,
    /// Most scalar bytes after alias expansion.
    pub max_scalar_bytes: u64,
}

/// The limits both the agent and the controller apply.
pub const LIMITS: Limits = Limits {
    max_bytes: 16 << 20,
    max_nodes: 100_000,
    max_depth: 64,
    max_scalar_bytes: 16 << 20,
};

/// Why a document could not be loaded. Every variant names where (line and
/// column are 1-based) and what.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum YamlError {
    /// Input larger than [`Limits::max_bytes`].
    #[error("the document is {got} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Input size.
        got: usize,
        /// The limit.
        limit: usize,
    },
    /// Input that is not UTF-8.
    #[error("invalid UTF-8 at byte {offset} (line {line}, column {column})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
        /// Its line.
        line: usize,
        /// Its column (characters).
        column: usize,
    },
    /// Not YAML.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// What the parser says.
        message: String,
    },
    /// A bound of [`Limits`] was passed.
    #[error("line {line}, column {column}: {what} (limit {limit})")]
    Limit {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// Which limit and how.
        what: &'static str,
        /// The limit's value.
        limit: u64,
    },
    /// A key appears twice in one mapping.
    #[error("line {line}, column {column}: duplicate key {key:?} (first at line {first_line}, column {first_column})")]
    DuplicateKey {
        /// The key (cut to 64 bytes).
        key: String,
        /// Line of the repeat.
        line: usize,
        /// Column of the repeat.
        column: usize,
        /// Line of the first occurrence.
        first_line: usize,
        /// Column of the first occurrence.
        first_column: usize,
    },
    /// The decoder refused a document the pre-pass accepted.
    #[error("{0}")]
    Decode(String),
}

/// Loads `bytes` (YAML, or JSON which is YAML) into a value within `limits`.
pub fn load(bytes: &[u8], limits: &Limits) -> Result<Value, YamlError> {
    if bytes.len() > limits.max_bytes {
        return Err(YamlError::TooLarge {
            got: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let (line, column) = line_column(&bytes[..offset]);
        YamlError::NotUtf8 {
            offset,
            line,
            column,
        }
    })?;
    load_str(text, limits)
}

/// Same as [`load`] for text already known to be UTF-8.
pub fn load_str(text: &str, limits: &Limits) -> Result<Value, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError::TooLarge {
            got: text.len(),
            limit: limits.max_bytes,
        });
    }
    check(text, limits)?;
    serde_yaml::from_str(text).map_err(|e| YamlError::Decode(e.to_string()))
}

/// 1-based line and column (in characters) just after `valid` (UTF-8).
fn line_column(valid: &[u8]) -> (usize, usize) {
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let line = 1 + text.matches('\n').count();
    let last = text.rfind('\n').map_or(text, |i| &text[i + 1..]);
    (line, 1 + last.chars().count())
}

/// Size of a completed anchored subtree.
#[derive(Clone, Copy)]
struct Cost {
    nodes: u64,
    bytes: u64,
    /// Nesting levels below the node itself (0 for a scalar).
    depth: usize,
}

/// Where a mapping is between its keys and values.
enum Key {
    /// The next node is a key.
    Wanted,
    /// The next node is the value of the key just seen.
    Got,
}

struct Frame {
    anchor: usize,
    start_nodes: u64,
    start_bytes: u64,
    /// Deepest absolute level reached inside, counting aliases.
    deepest: usize,
    /// `Some` for a mapping: its keys so far and what it waits for.
    map: Option<(HashMap<String, Marker>, Key)>,
}

struct Check<'l> {
    limits: &'l Limits,
    nodes: u64,
    bytes: u64,
    stack: Vec<Frame>,
    /// Completed anchors (`None` while the anchored node is still open).
    anchors: HashMap<usize, Option<Cost>>,
    /// Text of anchored scalars, for aliases used as keys.
    scalars: HashMap<usize, String>,
}

fn at(m: &Marker) -> (usize, usize) {
    (m.line(), m.col() + 1)
}

fn limit(m: &Marker, what: &'static str, limit: u64) -> YamlError {
    let (line, column) = at(m);
    YamlError::Limit {
        line,
        column,
        what,
        limit,
    }
}

impl Check<'_> {
    fn add(&mut self, m: &Marker, cost: Cost) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(cost.nodes);
        self.bytes = self.bytes.saturating_add(cost.bytes);
        if self.nodes > self.limits.max_nodes {
            return Err(limit(
                m,
                "more nodes than allowed (an alias counts every node it repeats)",
                self.limits.max_nodes,
            ));
        }
        if self.bytes > self.limits.max_scalar_bytes {
            return Err(limit(
                m,
                "more scalar bytes than allowed (an alias counts every byte it repeats)",
                self.limits.max_scalar_bytes,
            ));
        }
        let deepest = self.stack.len() + cost.depth;
        if deepest > self.limits.max_depth {
            return Err(limit(
                m,
                "nested deeper than allowed (an alias counts the depth it repeats)",
                self.limits.max_depth as u64,
            ));
        }
        if let Some(f) = self.stack.last_mut() {
            f.deepest = f.deepest.max(deepest);
        }
        Ok(())
    }

    /// A node starts in the innermost frame: if that is a mapping waiting
    /// for a key, `key` is the key's text (when it is a scalar).
    fn key(&mut self, m: &Marker, key: Option<&str>) -> Result<(), YamlError> {
        let Some(Frame {
            map: Some((keys, state)),
            ..
        }) = self.stack.last_mut()
        else {
            return Ok(());
        };
        match state {
            Key::Got => *state = Key::Wanted,
            Key::Wanted => {
                *state = Key::Got;
                if let Some(k) = key {
                    if let Some(first) = keys.get(k) {
                        let (line, column) = at(m);
                        let (first_line, first_column) = at(first);
                        return Err(YamlError::DuplicateKey {
                            key: crate::problem::clip(k, 64),
                            line,
                            column,
                            first_line,
                            first_column,
                        });
                    }
                    keys.insert(k.to_owned(), *m);
                }
            }
        }
        Ok(())
    }

    fn event(&mut self, ev: Event<'_>, m: &Marker) -> Result<(), YamlError> {
        match ev {
            Event::Scalar(v, _, anchor, _) => {
                self.key(m, Some(&v))?;
                let cost = Cost {
                    nodes: 1,
                    bytes: v.len() as u64,
                    depth: 0,
                };
                self.add(m, cost)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, Some(cost));
                    self.scalars.insert(anchor, v.into_owned());
                }
            }
            Event::Alias(id) => {
                let key = self.scalars.get(&id).cloned();
                self.key(m, key.as_deref())?;
                let cost = match self.anchors.get(&id) {
                    Some(Some(c)) => *c,
                    Some(None) => {
                        let (line, column) = at(m);
                        return Err(YamlError::Syntax {
                            line,
                            column,
                            message: "alias refers to a node that contains it".into(),
                        });
                    }
                    None => {
                        let (line, column) = at(m);
                        return Err(YamlError::Syntax {
                            line,
                            column,
                            message: "alias of an unknown anchor".into(),
                        });
                    }
                };
                self.add(m, cost)?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                self.key(m, None)?;
                self.add(
                    m,
                    Cost {
                        nodes: 1,
                        bytes: 0,
                        depth: 1,
                    },
                )?;
                if anchor > 0 {
                    self.anchors.insert(anchor, None);
                }
                self.stack.push(Frame {
                    anchor,
                    start_nodes: self.nodes,
                    start_bytes: self.bytes,
                    deepest: self.stack.len() + 1,
                    map: is_map.then(|| (HashMap::new(), Key::Wanted)),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(f) = self.stack.pop() {
                    let level = self.stack.len() + 1;
                    if f.anchor > 0 {
                        let cost = Cost {
                            // The start node itself was counted before the frame.
                            nodes: self.nodes - f.start_nodes + 1,
                            bytes: self.bytes - f.start_bytes,
                            depth: f.deepest - self.stack.len(),
                        };
                        self.anchors.insert(f.anchor, Some(cost));
                    }
                    if let Some(p) = self.stack.last_mut() {
                        p.deepest = p.deepest.max(f.deepest.max(level));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The pre-pass: refuses what is not YAML, passes a limit or repeats a key.
fn check(text: &str, limits: &Limits) -> Result<(), YamlError> {
    let mut c = Check {
        limits,
        nodes: 0,
        bytes: 0,
        stack: Vec::new(),
        anchors: HashMap::new(),
        scalars: HashMap::new(),
    };
    for item in Parser::new_from_str(text) {
        let (ev, span) = item.map_err(|e: ScanError| {
            let (line, column) = at(e.marker());
            YamlError::Syntax {
                line,
                column,
                message: e.info().to_owned(),
            }
        })?;
        c.event(ev, &span.start)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "yaml_tests.rs"]
mod tests;
