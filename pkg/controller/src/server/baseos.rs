//! `GET /api/v1/base-os/<sha256>`: a published base OS artifact, to device
//! certificates only, streamed from its file (bounded chunks), with
//! `Range: bytes=N-[M]` for a resumed download.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::peer::Peer;
use crate::reply::Failure;
use crate::state::{Caller, Controller};

/// Bytes read from the file per body frame.
const CHUNK: usize = 256 << 10;

/// `bytes=N-` or `bytes=N-M` of a file of `len` bytes → (first, last).
fn range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let first: u64 = a.trim().parse().ok()?;
    let last = match b.trim() {
        "" => len.checked_sub(1)?,
        t => t.parse::<u64>().ok()?.min(len.checked_sub(1)?),
    };
    (first <= last).then_some((first, last))
}

pub(crate) async fn download(
    State(c): State<Arc<Controller>>,
    Extension(peer): Extension<Peer>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let slot = match c.caller(peer.fingerprint.as_deref()) {
        Caller::Device(slot) => slot,
        Caller::Anonymous | Caller::Unknown => {
            return Err(Failure::unauthorized(
                "base OS images are served to device certificates only",
            ))
        }
        Caller::Onboarding => {
            return Err(Failure::forbidden(
                "the onboarding certificate may only register",
            ))
        }
    };
    slot.touch();
    let not_found = || Failure::not_found(format!("no base OS image {sha256}"), Vec::new());
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let path = c.artifact_file(&sha256).await?.ok_or_else(not_found)?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
        Failure::internal(format!(
            "base OS image {sha256}: opening {}: {e}",
            path.display()
        ))
    })?;
    let len = file
        .metadata()
        .await
        .map_err(|e| Failure::internal(format!("base OS image {sha256}: {e}")))?
        .len();
    let asked = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|h| range(h, len));
    let (status, first, last) = match asked {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(None) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response())
        }
    };
    file.seek(std::io::SeekFrom::Start(first))
        .await
        .map_err(|e| Failure::internal(format!("base OS image {sha256}: {e}")))?;
    let count = if len == 0 { 0 } else { last - first + 1 };
    tracing::info!(device = %slot.uuid(), sha256, first, count, "serving base OS image");
    let stream = futures::stream::unfold((file, count), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(left as usize)];
        match f.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the image file is shorter than it was",
                )),
                (f, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, count.into());
    h.insert(
        header::CONTENT_TYPE,
        "application/octet-stream".parse().unwrap(),
    );
    h.insert(header::ACCEPT_RANGES, "bytes".parse().unwrap());
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = format!("bytes {first}-{last}/{len}").parse() {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-", 10), Some((0, 9)));
        assert_eq!(range("bytes=4-6", 10), Some((4, 6)));
        assert_eq!(range("bytes=4-60", 10), Some((4, 9)));
        assert_eq!(range("bytes=10-", 10), None);
        assert_eq!(range("bytes=-5", 10), None);
        assert_eq!(range("items=0-", 10), None);
    }
}
