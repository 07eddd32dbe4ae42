//! Browser sessions of the console: logging in with an admin token makes a
//! random session ID, sent as an `HttpOnly; Secure; SameSite=Strict`
//! cookie; the server keeps only its SHA-256, the token's hash (re-checked
//! against the token list on every request, so revoking the token ends the
//! session) and a per-session CSRF token for the POST forms.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::Engine;
use rand::RngCore;

use crate::admin::tokens::{self, TokenIdentity};

/// Name of the session cookie.
pub const COOKIE: &str = "outpost_session";
/// How long a session lives.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held; the oldest is dropped (and counted) beyond.
pub const MAX_SESSIONS: usize = 1024;

/// One logged-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who logged in (the token's name, read-only flag and hash).
    pub who: TokenIdentity,
    /// CSRF token the POST forms must carry.
    pub csrf: String,
    /// When it was made.
    pub created: Instant,
}

/// The sessions held (bounded).
#[derive(Debug, Default)]
pub struct Sessions {
    by_id_hash: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The session cookie's value, if the request carries one.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
}

impl Sessions {
    /// Starts a session for `who`; returns the cookie value. A session
    /// dropped to make room is counted in `evicted`.
    pub fn create(&self, who: TokenIdentity, evicted: &AtomicU64) -> String {
        let id = random_token();
        let session = Session {
            who,
            csrf: random_token(),
            created: Instant::now(),
        };
        let mut map = self.by_id_hash.lock().unwrap();
        map.retain(|_, s| s.created.elapsed() < LIFETIME);
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone());
            let Some(oldest) = oldest else { break };
            map.remove(&oldest);
            crate::limits::Stats::bump(evicted);
            tracing::warn!(
                max = MAX_SESSIONS,
                "console session dropped: too many sessions"
            );
        }
        map.insert(tokens::hash(&id), session);
        id
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = tokens::hash(id);
        let mut map = self.by_id_hash.lock().unwrap();
        match map.get(&key) {
            Some(s) if s.created.elapsed() < LIFETIME => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of cookie value `id`.
    pub fn remove(&self, id: &str) {
        self.by_id_hash.lock().unwrap().remove(&tokens::hash(id));
    }
}

/// Whether a submitted CSRF token is the session's (constant time).
pub fn csrf_ok(session: &Session, submitted: &str) -> bool {
    tokens::constant_time_eq(session.csrf.as_bytes(), submitted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; outpost_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
        let s = Sessions::default();
        let who = TokenIdentity {
            name: "n".into(),
            read_only: false,
            sha256: "h".into(),
        };
        let id = s.create(who, &AtomicU64::new(0));
        let got = s.get(&id).unwrap();
        assert!(csrf_ok(&got, &got.csrf) && !csrf_ok(&got, "x"));
        s.remove(&id);
        assert!(s.get(&id).is_none());
    }
}
