//! Reading and writing blobs in containerd's content store.

use std::collections::HashMap;
use std::path::Path;

use containerd_client::services::v1::{
    InfoRequest, ReadContentRequest, UpdateRequest, WriteAction, WriteContentRequest,
};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Containerd;
use crate::error::{Result, RuntimeError};

/// Chunk size of content writes (also the most a write holds in memory).
const CHUNK: usize = 1 << 20;
/// Largest JSON document (manifest, index, config) read into memory.
pub const MAX_JSON_BLOB: i64 = 8 << 20;

/// Labels of a blob, or `None` when the store does not have it.
pub async fn info(c: &Containerd, digest: &str) -> Result<Option<HashMap<String, String>>> {
    let r = c
        .content()
        .info(c.req(InfoRequest {
            digest: digest.to_owned(),
        }))
        .await;
    match r {
        Ok(r) => Ok(Some(
            r.into_inner().info.map(|i| i.labels).unwrap_or_default(),
        )),
        Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
        Err(s) => Err(RuntimeError::api("content.Info", digest, s)),
    }
}

/// Adds `labels` to an existing blob (other labels are kept).
pub async fn add_labels(
    c: &Containerd,
    digest: &str,
    labels: &HashMap<String, String>,
) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
    c.content()
        .update(c.req(UpdateRequest {
            info: Some(containerd_client::services::v1::Info {
                digest: digest.to_owned(),
                labels: labels.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        }))
        .await
        .map_err(|s| RuntimeError::api("content.Update", digest, s))?;
    Ok(())
}

/// Writes the file at `path` as blob `digest` (size `size`) under `lease`,
/// streaming it in 1 MiB chunks; containerd verifies size and digest at
/// commit. An existing blob only gets its labels updated.
pub async fn write_file(
    c: &Containerd,
    lease: &str,
    digest: &str,
    size: i64,
    path: &Path,
    labels: HashMap<String, String>,
) -> Result<()> {
    retry_locked(c, digest, &labels, || async {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| RuntimeError::io("opening blob", path, e))?;
        write_stream(c, lease, digest, size, file, labels.clone()).await
    })
    .await
}

/// Longest wait for another writer of the same blob to finish.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// An error that may be containerd refusing a write because another writer
/// holds the same blob's ingest ref (two imports or pulls sharing a layer).
pub(crate) trait IngestLocked {
    /// True for that refusal.
    fn ingest_locked(&self) -> bool;
}

impl IngestLocked for RuntimeError {
    fn ingest_locked(&self) -> bool {
        matches!(self, RuntimeError::Api { status, .. } if status.code() == tonic::Code::Unavailable)
    }
}

/// Runs `write` unless blob `digest` is already in the store; while another
/// writer holds the blob's ingest, waits (up to `wait`) for it instead of
/// failing. Returns true when the blob was there without our write (the
/// caller then only adds labels or counts progress).
pub(crate) async fn write_unless_present<F, Fut, E>(
    c: &Containerd,
    digest: &str,
    wait: std::time::Duration,
    mut write: F,
) -> std::result::Result<bool, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), E>>,
    E: From<RuntimeError> + IngestLocked,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if info(c, digest).await?.is_some() {
            return Ok(true);
        }
        match write().await {
            Ok(()) => return Ok(false),
            Err(e) if e.ingest_locked() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// [`write_unless_present`], then the labels on a blob that was already there.
async fn retry_locked<F, Fut>(
    c: &Containerd,
    digest: &str,
    labels: &HashMap<String, String>,
    write: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if write_unless_present(c, digest, LOCK_WAIT, write).await? {
        add_labels(c, digest, labels).await?;
    }
    Ok(())
}

/// Writes an in-memory blob (manifests, configs).
pub async fn write_bytes(
    c: &Containerd,
    lease: &str,
    digest: &str,
    data: &[u8],
    labels: HashMap<String, String>,
) -> Result<()> {
    if info(c, digest).await?.is_some() {
        return add_labels(c, digest, &labels).await;
    }
    write_stream(
        c,
        lease,
        digest,
        data.len() as i64,
        std::io::Cursor::new(data.to_vec()),
        labels,
    )
    .await
}

async fn write_stream<R>(
    c: &Containerd,
    lease: &str,
    digest: &str,
    size: i64,
    mut reader: R,
    labels: HashMap<String, String>,
) -> Result<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(2);
    let reference = format!("outpost-{digest}");
    let d = digest.to_owned();
    let producer = tokio::spawn(async move {
        let mut offset = 0i64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let req = WriteContentRequest {
                action: WriteAction::Write as i32,
                r#ref: reference.clone(),
                total: size,
                expected: d.clone(),
                offset,
                data: buf[..n].to_vec(),
                labels: HashMap::new(),
            };
            offset += n as i64;
            if tx.send(req).await.is_err() {
                return Ok(offset);
            }
        }
        // The commit must carry offset = total, or containerd truncates.
        let commit = WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: reference,
            total: size,
            expected: d,
            offset,
            data: Vec::new(),
            labels,
        };
        let _ = tx.send(commit).await;
        Ok::<i64, std::io::Error>(offset)
    });
    let result = c
        .content()
        .write(c.req_leased(ReceiverStream::new(rx), lease))
        .await;
    let outcome = match result {
        Ok(resp) => {
            let mut stream = resp.into_inner();
            let mut last = Ok(());
            while let Some(msg) = stream.next().await {
                if let Err(s) = msg {
                    last = Err(s);
                    break;
                }
            }
            last
        }
        Err(s) => Err(s),
    };
    let written = producer
        .await
        .map_err(|e| RuntimeError::Image {
            reference: digest.to_owned(),
            problem: format!("writer task failed: {e}"),
        })?
        .map_err(|e| RuntimeError::Image {
            reference: digest.to_owned(),
            problem: format!("reading blob: {e}"),
        })?;
    match outcome {
        Ok(()) => {}
        // Another writer committed the same blob first: fine.
        Err(s) if s.code() == tonic::Code::AlreadyExists => {}
        Err(s) => return Err(RuntimeError::api("content.Write", digest, s)),
    }
    if written != size {
        return Err(RuntimeError::Image {
            reference: digest.to_owned(),
            problem: format!("blob has {written} bytes, descriptor says {size}"),
        });
    }
    Ok(())
}

/// Reads a whole (small) blob: manifests, indexes, configs.
pub async fn read_all(c: &Containerd, digest: &str) -> Result<Vec<u8>> {
    let mut stream = c
        .content()
        .read(c.req(ReadContentRequest {
            digest: digest.to_owned(),
            offset: 0,
            size: 0,
        }))
        .await
        .map_err(|s| RuntimeError::api("content.Read", digest, s))?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|s| RuntimeError::api("content.Read", digest, s))?;
        out.extend_from_slice(&chunk.data);
        if out.len() as i64 > MAX_JSON_BLOB {
            return Err(RuntimeError::Image {
                reference: digest.to_owned(),
                problem: format!("document larger than {MAX_JSON_BLOB} bytes"),
            });
        }
    }
    Ok(out)
}
