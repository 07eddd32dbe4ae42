//! Reading a request body within a size bound and the body timeout.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;

use crate::limits::Stats;
use crate::reply::Failure;

/// A body this much over its bound is no longer drained (the connection
/// is closed after the 413 instead): draining lets the client read the
/// answer rather than see its upload reset.
const DRAIN_MAX: usize = 64 << 20;

/// Reads the whole body: 413 beyond `max` bytes (after draining what the
/// client sends, up to a bound), 408 when it does not arrive within `within`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    within: Duration,
    stats: &Stats,
) -> Result<Bytes, Failure> {
    let too_large = || {
        Stats::bump(&stats.bodies_too_large);
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_MAX as u64) {
        return Err(too_large());
    }
    let read = async move {
        let mut body = body;
        let mut buf = Vec::with_capacity(declared.map_or(8192, |n| n.min(max as u64) as usize));
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| Failure::bad_request(format!("reading the request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len();
            if total <= max {
                buf.extend_from_slice(&data);
            } else if total > DRAIN_MAX {
                break;
            }
        }
        Ok::<_, Failure>((buf, total))
    };
    match tokio::time::timeout(within, read).await {
        Err(_) => {
            Stats::bump(&stats.body_timeouts);
            Err(Failure::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("request body not received within {} s", within.as_secs()),
            ))
        }
        Ok(Err(f)) => Err(f),
        Ok(Ok((_, total))) if total > max => Err(too_large()),
        Ok(Ok((buf, _))) => Ok(Bytes::from(buf)),
    }
}

/// [`read_json`] with the controller's JSON body bounds.
pub async fn read_json_body<T: serde::de::DeserializeOwned>(
    c: &crate::state::Controller,
    headers: &HeaderMap,
    body: Body,
    what: &str,
) -> Result<T, Failure> {
    let l = &c.limits;
    read_json(
        headers,
        body,
        l.max_json_body,
        l.body_timeout,
        &c.stats,
        what,
    )
    .await
}

/// Reads and decodes a JSON body within the JSON bound.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    within: Duration,
    stats: &Stats,
    what: &str,
) -> Result<T, Failure> {
    let bytes = read_body(headers, body, max, within, stats).await?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::bad_request(format!("{what}: {e}")))
}
