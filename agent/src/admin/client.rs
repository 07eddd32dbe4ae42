//! The CLI side of the admin API: HTTP/1 over the unix socket with hyper.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A connection factory for the admin socket.
pub struct AdminClient {
    socket: PathBuf,
}

/// A non-success answer, with the body for the caller to interpret.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: serde_json::Value,
}

impl AdminClient {
    /// A client for `socket`.
    pub fn new(socket: &Path) -> Self {
        AdminClient {
            socket: socket.to_owned(),
        }
    }

    /// GET `path`, decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Result<T, ApiFailure>> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// POST `path` with a JSON body, decoded.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Result<T, ApiFailure>> {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Result<T, ApiFailure>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| {
                format!(
                    "cannot reach outpostd at {} (is it running? are you root?)",
                    self.socket.display()
                )
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("admin API handshake")?;
        tokio::spawn(conn);
        let bytes = match body {
            Some(b) => serde_json::to_vec(b)?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(format!("http://outpostd{path}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))?;
        let resp = sender
            .send_request(req)
            .await
            .context("admin API request")?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("admin API body")?
            .to_bytes();
        if status.is_success() {
            let v = serde_json::from_slice(&body)
                .map_err(|e| anyhow!("admin API answered {path} with unexpected JSON: {e}"))?;
            Ok(Ok(v))
        } else {
            let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            Ok(Err(ApiFailure { status, body }))
        }
    }
}
