//! SHA-256 helpers: a hashing writer, file and byte digests, canonical JSON.

use std::io::{self, Read, Write};
use std::path::Path;

use oci_spec::image::Digest;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A writer that hashes and counts everything passing through to `inner`.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns the inner writer, the lowercase hex SHA-256 and the byte count.
    pub(crate) fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 and length of everything `reader` yields.
pub(crate) fn sha256_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut w = HashWriter::new(io::sink());
    io::copy(&mut reader, &mut w)?;
    let (_, hex, n) = w.finish();
    Ok((hex, n))
}

/// `sha256:<hex>` as an OCI digest.
pub(crate) fn sha256_digest(hex: &str) -> Digest {
    format!("sha256:{hex}")
        .parse()
        .expect("a lowercase 64-digit hex string is a valid sha256 digest")
}

/// Serialises `value` as compact JSON with object keys sorted at every level,
/// so that maps held in `HashMap`s (labels, annotations) produce the same
/// bytes on every run.
pub(crate) fn canonical_json<T: Serialize>(
    what: &'static str,
    path: &Path,
    value: &T,
) -> Result<Vec<u8>> {
    let err = |source| Error::Json {
        what,
        path: path.to_owned(),
        source,
    };
    let v = serde_json::to_value(value).map_err(err)?;
    serde_json::to_vec(&sorted(v)).map_err(err)
}

fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut m = HashMap::new();
        for k in ["z", "a", "m", "b", "y"] {
            m.insert(k.to_owned(), vec![HashMap::from([("q", 1), ("c", 2)])]);
        }
        let out = canonical_json("test", Path::new("x"), &m).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":[{"c":2,"q":1}],"b":[{"c":2,"q":1}],"m":[{"c":2,"q":1}],"y":[{"c":2,"q":1}],"z":[{"c":2,"q":1}]}"#
        );
    }

    #[test]
    fn hash_writer_matches_one_shot_digest() {
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, hex, n) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(hex, sha256_hex(b"hello world"));
        assert_eq!(
            hex,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
    }
}
