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
        let what = format!("GET {path}");
        let r = tokio::time::timeout(
            stall,
            self.http()
                .get(format!("https://{}{path}", self.server))
                .send(),
        )
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
