//! `GET /api/v1/devices/<uuid>/config?wait=S`: the config long-poll.
//!
//! Answers at once when the device's current config has another ETag than
//! `If-None-Match`; otherwise waits on the device's watch channel (no
//! polling) until `set-config` changes it or `wait` runs out (`304`, or
//! `204` when no config is set). A waiting request costs one task and one
//! watch receiver.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use outpost_api::cloud::MAX_WAIT_SECS;
use tokio::time::Instant;

use super::peer::Peer;
use crate::reply::Failure;
use crate::state::{Controller, CurrentConfig, DeviceSlot};

fn parse_wait(query: Option<&str>) -> Result<Duration, Failure> {
    let mut wait = 0;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "wait" {
            wait = v.parse::<u64>().map_err(|_| {
                Failure::bad_request(format!(
                    "wait={v:?}: seconds expected (0 to {MAX_WAIT_SECS})"
                ))
            })?;
        }
    }
    Ok(Duration::from_secs(wait.min(MAX_WAIT_SECS)))
}

/// Whether `If-None-Match` names `etag` (quoted, weak or `*`).
fn none_match_hits(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == etag)
}

fn etag_value(config: &CurrentConfig) -> HeaderValue {
    HeaderValue::from_str(&config.etag_header()).unwrap_or(HeaderValue::from_static("\"\""))
}

fn deliver(config: &CurrentConfig) -> Response {
    (
        StatusCode::OK,
        [
            (header::ETAG, etag_value(config)),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        config.body.clone(),
    )
        .into_response()
}

fn nothing_newer(current: Option<&CurrentConfig>) -> Response {
    match current {
        Some(c) => (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value(c))]).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// The long-poll handler.
pub async fn get_config(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    Path(uuid): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let slot = c.authorize(peer.fingerprint.as_deref(), &uuid).await?;
    let answer = wait_for_config(&c, &slot, &uuid, query.as_deref(), &headers).await;
    slot.touch();
    answer
}

async fn wait_for_config(
    c: &Controller,
    slot: &DeviceSlot,
    uuid: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, Failure> {
    let wait = parse_wait(query)?;
    let deadline = Instant::now() + wait;
    let mut rx = slot.config.subscribe();
    let mut shutdown = c.shutdown.subscribe();
    let mut waiting = None;
    loop {
        if slot.is_deleted() {
            return Err(Failure::unauthorized(format!("device {uuid} was deleted")));
        }
        if slot.is_revoked() {
            c.count_revoked();
            return Err(crate::state::revoked_failure(slot));
        }
        let current = rx.borrow_and_update().clone();
        if let Some(config) = &current {
            if !none_match_hits(headers, &config.etag) {
                return Ok(deliver(config));
            }
        }
        if *shutdown.borrow_and_update() {
            return Err(Failure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the controller is shutting down; ask again later",
            ));
        }
        if Instant::now() >= deadline {
            return Ok(nothing_newer(current.as_deref()));
        }
        waiting.get_or_insert_with(|| {
            crate::limits::Waiting::new([&c.stats.long_polls_waiting, &slot.polls_waiting])
        });
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Err(Failure::unauthorized(format!("device {uuid} was deleted")));
                }
            }
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        assert!(!none_match_hits(&h, "ab"));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"ab\""));
        assert!(none_match_hits(&h, "ab"));
        assert!(!none_match_hits(&h, "cd"));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"x\", \"cd\""),
        );
        assert!(none_match_hits(&h, "cd"));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match_hits(&h, "anything"));
    }

    #[test]
    fn wait_is_clamped_and_checked() {
        assert_eq!(parse_wait(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("wait=5")).unwrap(), Duration::from_secs(5));
        assert_eq!(
            parse_wait(Some("x=1&wait=9999")).unwrap(),
            Duration::from_secs(MAX_WAIT_SECS)
        );
        assert!(parse_wait(Some("wait=soon")).is_err());
    }
}
