//! Where the base OS image is read from: `file:/path`, plain
//! `http://host[:port]/path` (safe: the digest comes from the signed
//! config), or `https://` of the device's own controller, fetched with the
//! device's mTLS identity (what `outpost-controller base-os publish` sets;
//! the controller serves its images to device certificates only).
//!
//! A source opens at an offset (`Range: bytes=<from>-`), so an interrupted
//! download resumes where it stopped; a server that ignores the range
//! sends the whole image and [`Source::start`] says so. Errors say whether
//! trying again can help ([`FetchError`]).

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{anyhow, Context};
use outpost_cloud::client::body_start;
use outpost_cloud::{Bundle, Client, CloudError, Download, IdentityStore};
use outpost_runtime::Layout;

/// A failed fetch, and whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The network or the server for now (no connection, a stall, a cut
    /// stream, 5xx, 408, 429; a device not yet registered): retried with
    /// backoff, resuming where it stopped.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    /// Only a config change helps (a URL not fetched from, a missing file,
    /// a 4xx answer, a digest mismatch, an image larger than the slot).
    #[error("{0:#}")]
    Permanent(anyhow::Error),
}

impl FetchError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Transient(_))
    }
}

/// Whether an HTTP error status may go away by itself.
pub fn status_is_transient(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

type Fetched<T> = std::result::Result<T, FetchError>;

fn transient(e: impl Into<anyhow::Error>) -> FetchError {
    FetchError::Transient(e.into())
}

fn permanent(e: impl Into<anyhow::Error>) -> FetchError {
    FetchError::Permanent(e.into())
}

/// An image being read, from byte `start` of the image on.
pub struct Source {
    /// The bytes.
    pub reader: Box<dyn Read + Send>,
    /// Where in the image the first byte read is: the `from` asked for, or
    /// 0 when the server sent the whole image instead.
    pub start: u64,
}

/// A blocking reader for `url` (see the module doc) from byte `from` on.
pub fn open_source(url: &str, layout: &Layout, from: u64) -> Fetched<Source> {
    if let Some(p) = url.strip_prefix("file:") {
        let mut f = std::fs::File::open(p)
            .with_context(|| format!("opening {p}"))
            .map_err(permanent)?;
        f.seek(SeekFrom::Start(from))
            .with_context(|| format!("seeking {p} to {from}"))
            .map_err(permanent)?;
        return Ok(Source {
            reader: Box::new(f),
            start: from,
        });
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return from_controller(url, rest, layout, from);
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| permanent(anyhow!("{url}: only http:// and file:/ URLs are fetched")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let rt = tokio::runtime::Handle::current();
    let (start, body) = rt.block_on(async {
        let stream = tokio::time::timeout(IO_TIMEOUT, tokio::net::TcpStream::connect(&addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))
            .map_err(transient)?
            .with_context(|| format!("connecting to {addr}"))
            .map_err(transient)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(transient)?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header(hyper::header::HOST, authority);
        if from > 0 {
            req = req.header(hyper::header::RANGE, format!("bytes={from}-"));
        }
        let req = req
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .map_err(permanent)?;
        let resp = tokio::time::timeout(IO_TIMEOUT, sender.send_request(req))
            .await
            .with_context(|| format!("fetching {url}: no answer"))
            .map_err(transient)?
            .with_context(|| format!("fetching {url}"))
            .map_err(transient)?;
        let status = resp.status();
        if !status.is_success() {
            let e = anyhow!("fetching {url}: {status}");
            return Err(if status_is_transient(status.as_u16()) {
                transient(e)
            } else {
                permanent(e)
            });
        }
        let range = resp.headers().get(hyper::header::CONTENT_RANGE);
        let start = body_start(
            status == hyper::StatusCode::PARTIAL_CONTENT,
            range.and_then(|v| v.to_str().ok()),
        );
        Ok((start, resp.into_body()))
    })?;
    let reader = Box::new(HttpBody {
        rt,
        body,
        pending: hyper::body::Bytes::new(),
    });
    resumed_at(url, from, start, reader)
}

/// A source whose body begins at `start` ([`body_start`]) when `from` was
/// asked for: a partial answer must begin where asked (else the bytes would
/// land in the wrong place); a whole one (`start` 0) is read from the
/// beginning.
fn resumed_at(
    url: &str,
    from: u64,
    start: Option<u64>,
    reader: Box<dyn Read + Send>,
) -> Fetched<Source> {
    match start {
        Some(start) if start == 0 || start == from => Ok(Source { reader, start }),
        Some(start) => Err(transient(anyhow!(
            "{url}: asked for the image from byte {from}, the answer begins at byte {start}"
        ))),
        None => Err(transient(anyhow!(
            "{url}: asked for the image from byte {from}, the partial answer has no readable Content-Range"
        ))),
    }
}

/// How long a connect or a read of the image may stall.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

struct HttpBody {
    rt: tokio::runtime::Handle,
    body: hyper::body::Incoming,
    pending: hyper::body::Bytes,
}

impl Read for HttpBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use http_body_util::BodyExt;
        while self.pending.is_empty() {
            let frame = self
                .rt
                .block_on(tokio::time::timeout(IO_TIMEOUT, self.body.frame()))
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "the image download stalled")
                })?;
            match frame {
                None => return Ok(0),
                Some(f) => {
                    if let Ok(data) = f.map_err(std::io::Error::other)?.into_data() {
                        self.pending = data;
                    }
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}

/// `https://<controller>/path` with the device identity: only the
/// controller of `/config/server`, once registered.
fn from_controller(url: &str, rest: &str, layout: &Layout, from: u64) -> Fetched<Source> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let dir = layout.config_dir();
    let bundle = Bundle::load(&dir).map_err(permanent)?.ok_or_else(|| {
        permanent(anyhow!(
            "{url}: https:// images come from the controller, and {} names none",
            dir.display()
        ))
    })?;
    if authority != bundle.server {
        return Err(permanent(anyhow!(
            "{url}: https:// images are fetched only from this device's controller ({})",
            bundle.server
        )));
    }
    let ids = IdentityStore::new(layout.persist().join("certs"));
    // Registration (or renewal) may come any moment: worth waiting for.
    let id = ids
        .load(&bundle.server)
        .map_err(transient)?
        .ok_or_else(|| {
            transient(anyhow!(
                "{url}: the device has not registered with {} yet",
                bundle.server
            ))
        })?;
    let client = Client::new(
        &bundle.server,
        &bundle.root_pem,
        Some((&id.cert_pem, &id.key_pem)),
    )
    .map_err(permanent)?;
    let rt = tokio::runtime::Handle::current();
    let download = rt
        .block_on(client.download_from(path, from, IO_TIMEOUT))
        .map_err(|e| match &e {
            CloudError::Status { status, .. } if !status_is_transient(*status) => permanent(e),
            _ => transient(e),
        })?;
    let start = download.start();
    tracing::info!(url, from, start, bytes = ?download.content_length(), "base OS: downloading from the controller");
    let reader = Box::new(ControllerBody {
        rt,
        download,
        pending: Vec::new(),
        at: 0,
    });
    resumed_at(url, from, start, reader)
}

struct ControllerBody {
    rt: tokio::runtime::Handle,
    download: Download,
    pending: Vec<u8>,
    at: usize,
}

impl Read for ControllerBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.pending.len() {
            match self
                .rt
                .block_on(self.download.chunk())
                .map_err(std::io::Error::other)?
            {
                None => return Ok(0),
                Some(c) => {
                    self.pending = c;
                    self.at = 0;
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
