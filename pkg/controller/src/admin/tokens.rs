//! Admin API tokens for the HTTPS listener (`serve --admin-listen`).
//!
//! `outpost-controller token create NAME [--read-only]` prints a random
//! token once; only its SHA-256 is kept, in `<state>/admin-tokens.json`
//! (mode 0600, replaced atomically by rename). The server reads the file on
//! every authentication, so a `token revoke` takes effect at the next
//! request, sessions of the browser console included.

use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ControllerError, Result};
use crate::layout::StateDir;

/// File name of the token list in the state directory.
pub const TOKENS_FILE: &str = "admin-tokens.json";
/// Most tokens one controller keeps.
pub const MAX_TOKENS: usize = 256;
/// Longest token name.
pub const MAX_NAME: usize = 64;
/// Largest token file read (a bound against a corrupted file).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Prefix of every token (recognisable in a secret scanner).
const PREFIX: &str = "opt_";

/// One stored token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Operator-chosen name (unique).
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
    /// May only read (GET); every change is refused with 403.
    pub read_only: bool,
    /// When created (RFC 3339).
    pub created_at: String,
}

/// Who a presented token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The token's name.
    pub name: String,
    /// Read-only token.
    pub read_only: bool,
    /// Its hash (sessions re-check that it is still listed).
    pub sha256: String,
}

/// The token list of one state directory.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

/// Lowercase hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl TokenStore {
    /// The token list of `state`.
    pub fn new(state: &StateDir) -> Self {
        TokenStore {
            path: state.file(TOKENS_FILE),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token record (none when the file does not exist yet).
    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        let bytes = match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ControllerError::io("reading", &self.path)(e)),
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return Err(ControllerError::Invalid(format!(
                    "{}: {} bytes, more than the {MAX_FILE_BYTES} allowed",
                    self.path.display(),
                    m.len()
                )))
            }
            Ok(_) => {
                std::fs::read(&self.path).map_err(ControllerError::io("reading", &self.path))?
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            ControllerError::Invalid(format!("{}: not a token list: {e}", self.path.display()))
        })
    }

    /// Holds an exclusive lock on `<file>.lock` while the list is read,
    /// changed and replaced (two `token` commands at once lose nothing).
    fn locked<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path.with_extension("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(ControllerError::io("opening", &path))?;
        let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| ControllerError::io("locking", &path)(e.into()))?;
        f()
    }

    fn save(&self, records: &[TokenRecord]) -> Result<()> {
        let json = serde_json::to_vec_pretty(records)
            .map_err(|e| ControllerError::Invalid(format!("encoding the token list: {e}")))?;
        let tmp = self.path.with_extension("json.tmp");
        crate::pki::write_file(&tmp, &json, 0o600)?;
        std::fs::rename(&tmp, &self.path).map_err(ControllerError::io("replacing", &self.path))
    }

    /// Creates token `name`; returns the token (shown once, never stored).
    pub fn create(&self, name: &str, read_only: bool) -> Result<String> {
        self.locked(|| self.create_locked(name, read_only))
    }

    fn create_locked(&self, name: &str, read_only: bool) -> Result<String> {
        if !valid_name(name) {
            return Err(ControllerError::Invalid(format!(
                "token name {name:?}: use 1 to {MAX_NAME} letters, digits, '-', '_' or '.'"
            )));
        }
        let mut records = self.list()?;
        if records.iter().any(|r| r.name == name) {
            return Err(ControllerError::Invalid(format!(
                "token {name:?} exists already (revoke it first)"
            )));
        }
        if records.len() >= MAX_TOKENS {
            return Err(ControllerError::Invalid(format!(
                "{MAX_TOKENS} tokens exist already: revoke one first"
            )));
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let created_at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        records.push(TokenRecord {
            name: name.to_owned(),
            sha256: hash(&token),
            read_only,
            created_at,
        });
        self.save(&records)?;
        Ok(token)
    }

    /// Removes token `name`; false when there was none.
    pub fn revoke(&self, name: &str) -> Result<bool> {
        self.locked(|| self.revoke_locked(name))
    }

    fn revoke_locked(&self, name: &str) -> Result<bool> {
        let mut records = self.list()?;
        let before = records.len();
        records.retain(|r| r.name != name);
        if records.len() == before {
            return Ok(false);
        }
        self.save(&records)?;
        Ok(true)
    }

    /// [`TokenStore::verify`] off the async threads (the list is a file),
    /// with the failure as an HTTP answer.
    pub async fn identify(
        &self,
        token: String,
    ) -> std::result::Result<Option<TokenIdentity>, crate::reply::Failure> {
        let tokens = self.clone();
        tokio::task::spawn_blocking(move || tokens.verify(&token))
            .await
            .map_err(crate::reply::Failure::internal)?
            .map_err(crate::reply::Failure::internal)
    }

    /// The identity of a presented token, if it is listed. Every record is
    /// compared in constant time (no early exit on a match).
    pub fn verify(&self, token: &str) -> Result<Option<TokenIdentity>> {
        let presented = hash(token);
        Ok(self.find_hash(&presented)?.map(|r| TokenIdentity {
            name: r.name,
            read_only: r.read_only,
            sha256: presented,
        }))
    }

    /// The record whose hash is `sha256`, if still listed (constant time).
    pub fn find_hash(&self, sha256: &str) -> Result<Option<TokenRecord>> {
        let mut found = None;
        for r in self.list()? {
            if constant_time_eq(r.sha256.as_bytes(), sha256.as_bytes()) {
                found = Some(r);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(&StateDir::new(dir.path()));
        assert!(store.list().unwrap().is_empty());
        let t = store.create("ci", true).unwrap();
        assert!(t.starts_with(PREFIX) && t.len() > 40);
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&t), "the token itself is never stored");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(store.path()).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let id = store.verify(&t).unwrap().unwrap();
        assert_eq!((id.name.as_str(), id.read_only), ("ci", true));
        assert!(store.verify("opt_nope").unwrap().is_none());
        assert!(store.create("ci", false).is_err());
        assert!(store.create("bad name", false).is_err());
        assert!(store.revoke("ci").unwrap());
        assert!(!store.revoke("ci").unwrap());
        assert!(store.verify(&t).unwrap().is_none());
    }

    #[test]
    fn concurrent_creates_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(&StateDir::new(dir.path()));
        std::thread::scope(|s| {
            for i in 0..8 {
                let store = store.clone();
                s.spawn(move || store.create(&format!("t{i}"), false).unwrap());
            }
        });
        assert_eq!(store.list().unwrap().len(), 8);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
