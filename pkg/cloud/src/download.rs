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
    /// The offset in the whole file of the body's first byte (see
    /// [`body_start`]).
    pub fn start(&self) -> Option<u64> {
        let range = self.resp.headers().get(reqwest::header::CONTENT_RANGE);
        body_start(
            self.resp.status() == reqwest::StatusCode::PARTIAL_CONTENT,
            range.and_then(|v| v.to_str().ok()),
        )
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

/// Where in the whole file an answer's body begins: 0 for a whole answer;
/// for a partial one (`206`), the first byte its `Content-Range: bytes
/// <first>-<last>/<len>` names, or `None` when that is missing or unreadable.
pub fn body_start(partial: bool, content_range: Option<&str>) -> Option<u64> {
    if !partial {
        return Some(0);
    }
    content_range?
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::body_start;

    #[test]
    fn content_range() {
        assert_eq!(body_start(true, Some("bytes 100-199/200")), Some(100));
        assert_eq!(body_start(true, Some("bytes */200")), None);
        assert_eq!(body_start(true, Some("items 1-2/3")), None);
        assert_eq!(body_start(true, None), None);
        assert_eq!(body_start(false, Some("bytes 100-199/200")), Some(0));
        assert_eq!(body_start(false, None), Some(0));
    }
}
