//! Streaming one blob from the registry into containerd's content store.
//!
//! Bytes go registry → sha256 hasher → 1 MiB gRPC write messages (at most
//! two queued), so memory per blob is bounded whatever its size. The hash
//! is checked before the commit message is sent: a corrupted blob never
//! becomes content (containerd checks `expected` at commit as well).
//!
//! **Resume**: the hasher state and the containerd write stream live for the
//! whole transfer. When the HTTP body breaks mid-blob, the next request asks
//! for `Range: bytes=<received>-` and the bytes continue into the same write
//! at the same offset. A registry that answers `200` instead of `206`
//! restarts the blob: hasher reset, and the next write at offset 0 makes
//! containerd truncate its ingest. A write left by a process that died is
//! not resumed across processes (its hash state is gone; containerd cannot
//! read an unfinished ingest back): the next pull writes from offset 0,
//! which truncates it.

use std::collections::HashMap;
use std::time::Duration;

use containerd_client::services::v1::{WriteAction, WriteContentRequest};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::PullError;
use super::progress::Progress;
use super::registry::Registry;
use crate::client::Containerd;
use crate::error::RuntimeError;
use crate::image::content;

/// gRPC write message size (and most bytes buffered per blob).
const CHUNK: usize = 1 << 20;
/// HTTP attempts per blob before giving up.
const ATTEMPTS: u32 = 6;
/// Longest wait for another writer of the same blob.
const LOCK_WAIT: Duration = Duration::from_secs(300);

/// A layer to fetch.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub digest: String,
    pub size: u64,
}

/// Makes `blob` present in the content store under `lease`; a blob already
/// there is not fetched again (layers shared between images, re-pulls).
pub(crate) async fn fetch_blob(
    c: &Containerd,
    reg: &Registry,
    lease: &str,
    blob: &Blob,
    progress: &Progress,
) -> Result<(), PullError> {
    let present = content::write_unless_present(c, &blob.digest, LOCK_WAIT, || {
        stream_once(c, reg, lease, blob, progress)
    })
    .await?;
    if present {
        progress.add(blob.size);
    }
    Ok(())
}

async fn stream_once(
    c: &Containerd,
    reg: &Registry,
    lease: &str,
    blob: &Blob,
    progress: &Progress,
) -> Result<(), PullError> {
    let (tx, rx) = mpsc::channel::<WriteContentRequest>(2);
    let writer = {
        let c = c.clone();
        let lease = lease.to_owned();
        tokio::spawn(async move {
            let resp = c
                .content()
                .write(c.req_leased(ReceiverStream::new(rx), &lease))
                .await?;
            let mut stream = resp.into_inner();
            while let Some(msg) = stream.next().await {
                msg?;
            }
            Ok::<(), tonic::Status>(())
        })
    };
    let sent = send_blob(reg, blob, progress, &tx).await;
    drop(tx);
    let written = writer.await.map_err(|e| RuntimeError::Image {
        reference: blob.digest.clone(),
        problem: format!("content writer task failed: {e}"),
    })?;
    match (sent, written) {
        (Ok(true), Ok(())) => Ok(()),
        (Ok(true), Err(s)) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        // The writer stopped first: its error explains why sending stopped.
        (Ok(false), Ok(())) => Err(RuntimeError::Image {
            reference: blob.digest.clone(),
            problem: "content write closed early".into(),
        }
        .into()),
        (Ok(_), Err(s)) => Err(RuntimeError::api("content.Write", &blob.digest, s).into()),
        (Err(e), _) => Err(e),
    }
}

/// Feeds the blob's bytes (resuming with Range) into `tx`, then the commit.
/// `Ok(false)` when containerd closed the write stream early.
async fn send_blob(
    reg: &Registry,
    blob: &Blob,
    progress: &Progress,
    tx: &mpsc::Sender<WriteContentRequest>,
) -> Result<bool, PullError> {
    let reference = format!("outpost-{}", blob.digest);
    let msg = |action: WriteAction, offset: u64, data: Vec<u8>, labels| WriteContentRequest {
        action: action as i32,
        r#ref: reference.clone(),
        total: blob.size as i64,
        expected: blob.digest.clone(),
        offset: offset as i64,
        data,
        labels,
    };
    let mut hasher = Sha256::new();
    let mut received = 0u64; // hashed and handed to containerd (or buffered)
    let mut flushed = 0u64; // offset of the next write message
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut attempts = 0u32;
    let mut last_err = String::new();
    let what = format!("fetching blob {}", blob.digest);
    while received < blob.size || attempts == 0 {
        attempts += 1;
        if attempts > ATTEMPTS {
            return Err(PullError::Transfer {
                registry: reg.registry.clone(),
                repository: reg.repository.clone(),
                digest: blob.digest.clone(),
                attempts: ATTEMPTS,
                offset: received,
                last: last_err,
            });
        }
        if attempts > 1 {
            tracing::info!(digest = %blob.digest, offset = received, attempt = attempts, "resuming blob");
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts - 1))).await;
        }
        let headers = if received > 0 {
            vec![("range", format!("bytes={received}-"))]
        } else {
            vec![]
        };
        let resp = match reg
            .get(
                Method::GET,
                &what,
                &format!("blobs/{}", blob.digest),
                &headers,
            )
            .await
        {
            Ok(r) => r,
            Err(PullError::Http { source, .. }) => {
                last_err = source.to_string();
                continue;
            }
            Err(e) => return Err(e),
        };
        let resp = reg.check(resp, &what, &blob.digest).await?;
        if received > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            // No range support: start over; offset 0 truncates the ingest.
            tracing::info!(digest = %blob.digest, "registry ignored Range; restarting blob");
            progress.sub(received);
            hasher = Sha256::new();
            received = 0;
            flushed = 0;
            buf.clear();
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    last_err = e.to_string();
                    break;
                }
            };
            if received + chunk.len() as u64 > blob.size {
                return Err(PullError::Digest {
                    registry: reg.registry.clone(),
                    repository: reg.repository.clone(),
                    digest: blob.digest.clone(),
                    actual: format!("(more than the {} bytes of its descriptor)", blob.size),
                });
            }
            hasher.update(&chunk);
            received += chunk.len() as u64;
            progress.add(chunk.len() as u64);
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let take = rest.len().min(CHUNK - buf.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() == CHUNK {
                    let data = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                    let n = data.len() as u64;
                    if tx
                        .send(msg(WriteAction::Write, flushed, data, HashMap::new()))
                        .await
                        .is_err()
                    {
                        return Ok(false);
                    }
                    flushed += n;
                }
            }
        }
        if received < blob.size && last_err.is_empty() {
            last_err = format!("body ended at byte {received} of {}", blob.size);
        }
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != blob.digest {
        // Dropping the stream without a commit leaves an ingest that the
        // lease's end (or the next write at offset 0) discards.
        return Err(PullError::Digest {
            registry: reg.registry.clone(),
            repository: reg.repository.clone(),
            digest: blob.digest.clone(),
            actual,
        });
    }
    if !buf.is_empty() {
        let n = buf.len() as u64;
        if tx
            .send(msg(
                WriteAction::Write,
                flushed,
                std::mem::take(&mut buf),
                HashMap::new(),
            ))
            .await
            .is_err()
        {
            return Ok(false);
        }
        flushed += n;
    }
    // The commit must carry offset = total, or containerd truncates.
    Ok(tx
        .send(msg(
            WriteAction::Commit,
            flushed,
            Vec::new(),
            HashMap::new(),
        ))
        .await
        .is_ok())
}
