//! Streamed downloads from the controller with the client's identity
//! (`GET /api/v1/base-os/<sha256>`: base OS images, far larger than any
//! bounded JSON answer, so they are handed over chunk by chunk).

use std::time::Duration;

use super::Client;
use crate::error::CloudError;

/// An answer being downloaded.
#[derive(Debug)]
pub struct Download {
    what: String,
    server: String,
    resp: reqwest::Response,
    stall: Duration,
}

impl Client {
    /// `GET <path>` on the controller (`path` absolute, e.g.
    /// `/api/v1/base-os/…`); `stall` bounds the wait for the answer and
    /// for each chunk after it. Error statuses are errors.
    pub async fn download(&self, path: &str, stall: Duration) -> Result<Download, CloudError> {
        self.download_from(path, 0, stall).await
    }

    /// [`Client::download`] from byte `from` on (`Range: bytes=<from>-`,
    /// to resume an interrupted download). A server may send the whole
    /// body instead: [`Download::start`] says where the body begins.
    pub async fn download_from(
        &self,
        path: &str,
        from: u64,
        stall: Duration,
    ) -> Result<Download, CloudError> {
        let what = format!("GET {path}");
        let mut req = self.http().get(format!("https://{}{path}", self.server));
        if from > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-"));
        }
        let r = tokio::time::timeout(stall, req.send())
            .await
            .map_err(|_| CloudError::Transport {
                server: self.server.clone(),
                detail: format!("{what}: no answer within {}s", stall.as_secs()),
            })?
            .map_err(|e| self.transport(e))?;
        let resp = self.check(&what, r).await?;
        Ok(Download {
            what,
            server: self.server.clone(),
            resp,
            stall,
        })
    }
}

impl Download {
    /// The offset in the whole file of the body's first byte: the start of
    /// a partial answer's `Content-Range`, else 0.
    pub fn start(&self) -> u64 {
        content_range_start(&self.resp)
    }

    /// The declared length, if any.
    pub fn content_length(&self) -> Option<u64> {
        self.resp.content_length()
    }

    /// The next chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, CloudError> {
        let next = tokio::time::timeout(self.stall, self.resp.chunk())
            .await
            .map_err(|_| CloudError::Transport {
                server: self.server.clone(),
                detail: format!("{}: stalled for {}s", self.what, self.stall.as_secs()),
            })?
            .map_err(|e| CloudError::Transport {
                server: self.server.clone(),
                detail: format!("{}: {}", self.what, crate::error::chain(&e)),
            })?;
        Ok(next.map(|b| b.to_vec()))
    }
}

/// The first byte of a `206 Partial Content` answer (`Content-Range:
/// bytes <first>-<last>/<len>`); 0 for any other answer.
fn content_range_start(resp: &reqwest::Response) -> u64 {
    if resp.status() != reqwest::StatusCode::PARTIAL_CONTENT {
        return 0;
    }
    let header = resp.headers().get(reqwest::header::CONTENT_RANGE);
    content_range_first(header.and_then(|v| v.to_str().ok())).unwrap_or(0)
}

/// The first byte a `Content-Range: bytes <first>-<last>/<len>` value
/// names; `None` when there is no such value.
pub fn content_range_first(value: Option<&str>) -> Option<u64> {
    value?
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::content_range_first;

    #[test]
    fn content_range() {
        assert_eq!(content_range_first(Some("bytes 100-199/200")), Some(100));
        assert_eq!(content_range_first(Some("bytes */200")), None);
        assert_eq!(content_range_first(Some("items 1-2/3")), None);
        assert_eq!(content_range_first(None), None);
    }
}
