//! The CLI side of the admin API: HTTP/1 over the unix socket.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ControllerError, Result};
use crate::reply::ErrorBody;

/// A client for `<state>/admin.sock`.
#[derive(Clone, Debug)]
pub struct AdminClient {
    socket: PathBuf,
}

/// Percent-encodes one URL path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl AdminClient {
    /// A client for `socket`.
    pub fn new(socket: &Path) -> Self {
        AdminClient {
            socket: socket.to_owned(),
        }
    }

    fn fail(&self, message: impl Into<String>) -> ControllerError {
        ControllerError::Admin {
            socket: self.socket.clone(),
            message: message.into(),
        }
    }

    /// GET `path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// POST `path` with a JSON body.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// PUT `path` with a JSON body.
    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// DELETE `path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| self.fail(e.to_string()))?,
            None => Vec::new(),
        };
        let body = Full::new(Bytes::from(bytes)).map_err(|never| match never {});
        self.send(method, path, "application/json", BoxBody::new(body))
            .await
    }

    /// POST `path` with the file at `file` as the body, streamed (64 KiB
    /// reads; `base-os publish`).
    pub async fn upload<T: DeserializeOwned>(&self, path: &str, file: &Path) -> Result<T> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| self.fail(format!("opening {}: {e}", file.display())))?;
        let frames = futures::stream::unfold(f, |mut f| async move {
            let mut buf = vec![0u8; 64 << 10];
            match tokio::io::AsyncReadExt::read(&mut f, &mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let body = BoxBody::new(StreamBody::new(frames));
        self.send(Method::POST, path, "application/octet-stream", body)
            .await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: BoxBody<Bytes, std::io::Error>,
    ) -> Result<T> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| {
            self.fail(format!(
                "cannot connect ({e}): is `outpost-controller serve` running on this state dir, and are you root?"
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.fail(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(format!("http://controller{path}"))
            .header("content-type", content_type)
            .body(body)
            .map_err(|e| self.fail(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.fail(format!("{path}: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.fail(format!("{path}: reading the answer: {e}")))?
            .to_bytes();
        if status.is_success() {
            serde_json::from_slice(&body)
                .map_err(|e| self.fail(format!("{path}: unexpected answer: {e}")))
        } else {
            let err: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
                error: format!("{status}: {}", String::from_utf8_lossy(&body)),
                suggestions: Vec::new(),
            });
            Err(ControllerError::AdminRefused {
                status: status.as_u16(),
                message: err.error,
                suggestions: err.suggestions,
            })
        }
    }
}
