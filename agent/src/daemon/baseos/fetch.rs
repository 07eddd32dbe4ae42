//! Where the base OS image is read from: `file:/path`, plain
//! `http://host[:port]/path` (safe: the digest comes from the signed
//! config), or `https://` of the device's own controller, fetched with the
//! device's mTLS identity (what `outpost-controller base-os publish` sets;
//! the controller serves its images to device certificates only).

use std::io::Read;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use outpost_cloud::{Bundle, Client, Download, IdentityStore};
use outpost_runtime::Layout;

/// A blocking reader for `url` (see the module doc).
pub fn open_source(url: &str, layout: &Layout) -> Result<Box<dyn Read + Send>> {
    if let Some(p) = url.strip_prefix("file:") {
        let f = std::fs::File::open(p).with_context(|| format!("opening {p}"))?;
        return Ok(Box::new(f));
    }
    if let Some(rest) = url.strip_prefix("https://") {
        return from_controller(url, rest, layout);
    }
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// and file:/ URLs are fetched"))?;
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
    let body = rt.block_on(async {
        let stream = tokio::time::timeout(IO_TIMEOUT, tokio::net::TcpStream::connect(&addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
        let resp = tokio::time::timeout(IO_TIMEOUT, sender.send_request(req))
            .await
            .with_context(|| format!("fetching {url}: no answer"))??;
        if !resp.status().is_success() {
            bail!("fetching {url}: {}", resp.status());
        }
        anyhow::Ok(resp.into_body())
    })?;
    Ok(Box::new(HttpBody {
        rt,
        body,
        pending: hyper::body::Bytes::new(),
    }))
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
fn from_controller(url: &str, rest: &str, layout: &Layout) -> Result<Box<dyn Read + Send>> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let dir = layout.config_dir();
    let bundle = Bundle::load(&dir)?.with_context(|| {
        format!(
            "{url}: https:// images come from the controller, and {} names none",
            dir.display()
        )
    })?;
    if authority != bundle.server {
        bail!(
            "{url}: https:// images are fetched only from this device's controller ({})",
            bundle.server
        );
    }
    let ids = IdentityStore::new(layout.persist().join("certs"));
    let id = ids.load(&bundle.server)?.with_context(|| {
        format!(
            "{url}: the device has not registered with {} yet",
            bundle.server
        )
    })?;
    let client = Client::new(
        &bundle.server,
        &bundle.root_pem,
        Some((&id.cert_pem, &id.key_pem)),
    )?;
    let rt = tokio::runtime::Handle::current();
    let download = rt.block_on(client.download(path, IO_TIMEOUT))?;
    tracing::info!(url, bytes = ?download.content_length(), "base OS: downloading from the controller");
    Ok(Box::new(ControllerBody {
        rt,
        download,
        pending: Vec::new(),
        at: 0,
    }))
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
