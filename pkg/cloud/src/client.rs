//! HTTPS client of the controller API (`docs/api.md`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use outpost_api::cloud::{
    ApiError, CertsResponse, DeviceInfo, DeviceMetrics, LogAck, RegisterRequest, RegisterResponse,
    RenewRequest, RenewResponse, SignedEnvelope, API_PREFIX, BATCH_HEADER,
};
use outpost_api::Clock;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::{Response, StatusCode};

use crate::error::{chain, CloudError};
use crate::tls::client_config_with;

fn build_http(
    root_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
    opts: &ClientOptions,
) -> Result<reqwest::Client, CloudError> {
    let tls = client_config_with(root_pem, identity, &opts.clock)?;
    let mut b = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(10))
        // The controller closes connections idle for 10 s (its header
        // deadline); never reuse one that may be closing.
        .pool_idle_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .user_agent(concat!("outpost/", env!("CARGO_PKG_VERSION")));
    if !opts.reuse_connections {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().map_err(|e| CloudError::Tls(chain(&e)))
}

#[path = "download.rs"]
mod download;
pub use download::{body_start, Download};

/// Most bytes read of a config envelope: the controller's 4 MiB document
/// as JSON (escapes grow it) in base64 (× 4/3) plus the envelope. The
/// controller refuses to sign a payload whose envelope would be larger.
pub const MAX_ENVELOPE_BYTES: usize = outpost_api::cloud::MAX_ENVELOPE_BYTES;
/// Most bytes read of any other answer (certificate, registration, log
/// acknowledgement).
pub const MAX_SMALL_BODY_BYTES: usize = 64 << 10;
/// Most bytes read of an error answer (a short message is shown).
pub const MAX_ERROR_BODY_BYTES: usize = 4 << 10;

/// What a config long-poll returned.
#[derive(Clone, Debug)]
pub enum Poll {
    /// A config other than the one asked about (not yet verified).
    Changed {
        /// The envelope.
        envelope: SignedEnvelope,
        /// Its ETag, unquoted.
        etag: Option<String>,
    },
    /// Nothing newer within the wait.
    NotModified,
    /// The controller has no config for this device yet.
    Empty,
}

/// How a [`Client`] checks time and keeps connections.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The clock of the server certificate's validity check.
    pub clock: Clock,
    /// Keep idle connections for the next request (off: every request
    /// makes a new TLS handshake, as a test of validity at each step needs).
    pub reuse_connections: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            clock: Clock::system(),
            reuse_connections: true,
        }
    }
}

/// A controller client with one TLS identity, replaceable in place
/// ([`Client::set_identity`]: every clone uses the new one from its next
/// request on, a request under way finishes on its connection).
#[derive(Clone, Debug)]
pub struct Client {
    server: String,
    base: String,
    root_pem: Arc<[u8]>,
    opts: ClientOptions,
    http: Arc<RwLock<reqwest::Client>>,
}

impl Client {
    /// A client of `server` (`host:port`) trusting only `root_pem`,
    /// presenting `identity` (cert PEM, key PEM) when given.
    pub fn new(
        server: &str,
        root_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, CloudError> {
        Self::with_options(server, root_pem, identity, ClientOptions::default())
    }

    /// [`Client::new`] with `opts`.
    pub fn with_options(
        server: &str,
        root_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
        opts: ClientOptions,
    ) -> Result<Self, CloudError> {
        let http = build_http(root_pem, identity, &opts)?;
        Ok(Client {
            server: server.to_owned(),
            base: format!("https://{server}{API_PREFIX}"),
            root_pem: root_pem.into(),
            opts,
            http: Arc::new(RwLock::new(http)),
        })
    }

    /// Presents `cert_pem` + `key_pem` from the next request on (a renewed
    /// certificate): the TLS configuration is rebuilt, nothing restarts.
    pub fn set_identity(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), CloudError> {
        let http = build_http(&self.root_pem, Some((cert_pem, key_pem)), &self.opts)?;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        Ok(())
    }

    /// The clock of validity checks.
    pub fn clock(&self) -> &Clock {
        &self.opts.clock
    }

    fn http(&self) -> reqwest::Client {
        self.http.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `POST /devices/<uuid>/cert`: a new certificate for the CSR's key,
    /// authenticated by the current device certificate.
    pub async fn renew_cert(
        &self,
        uuid: &str,
        req: &RenewRequest,
    ) -> Result<RenewResponse, CloudError> {
        let r = self
            .http()
            .post(format!("{}/devices/{uuid}/cert", self.base))
            .json(req)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let r = self.check("POST cert", r).await?;
        self.json("POST cert", r, MAX_SMALL_BODY_BYTES).await
    }

    /// `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    fn transport(&self, e: reqwest::Error) -> CloudError {
        CloudError::Transport {
            server: self.server.clone(),
            detail: chain(&e),
        }
    }

    async fn check(&self, what: &str, r: Response) -> Result<Response, CloudError> {
        let status = r.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(r);
        }
        let body = match self.read(what, r, MAX_ERROR_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => e.to_string().into_bytes(),
        };
        let message = serde_json::from_slice::<ApiError>(&body)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
        Err(CloudError::Status {
            status: status.as_u16(),
            what: what.to_owned(),
            message,
        })
    }

    /// Reads `r`'s body, at most `limit` bytes: a longer one is refused
    /// before reading by its Content-Length, or as soon as it passes the
    /// limit (the connection is dropped, not drained).
    async fn read(&self, what: &str, mut r: Response, limit: usize) -> Result<Vec<u8>, CloudError> {
        let too_large = |seen: u64, declared: bool| CloudError::TooLarge {
            server: self.server.clone(),
            what: what.to_owned(),
            limit,
            seen,
            declared,
        };
        if let Some(n) = r.content_length().filter(|n| *n > limit as u64) {
            return Err(too_large(n, true));
        }
        let mut out = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| self.transport(e))? {
            let seen = out.len() + chunk.len();
            if seen > limit {
                return Err(too_large(seen as u64, false));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads and decodes `r`'s JSON body of at most `limit` bytes.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        r: Response,
        limit: usize,
    ) -> Result<T, CloudError> {
        let body = self.read(what, r, limit).await?;
        serde_json::from_slice(&body).map_err(|e| CloudError::Decode {
            server: self.server.clone(),
            what: what.to_owned(),
            detail: e.to_string(),
        })
    }

    /// `GET /ping`.
    pub async fn ping(&self) -> Result<(), CloudError> {
        let r = self
            .http()
            .get(format!("{}/ping", self.base))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.check("GET /ping", r).await.map(drop)
    }

    /// `GET /certs`: the signing certificate, PEM.
    pub async fn signing_cert(&self) -> Result<String, CloudError> {
        let r = self
            .http()
            .get(format!("{}/certs", self.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let r = self.check("GET /certs", r).await?;
        let c: CertsResponse = self.json("GET /certs", r, MAX_SMALL_BODY_BYTES).await?;
        Ok(c.signing_cert_pem)
    }

    /// `GET /certs/<fingerprint>`: a signing certificate an envelope names
    /// (current, or retired by a rotation and still inside its overlap).
    pub async fn signing_cert_by_fingerprint(&self, fp: &str) -> Result<String, CloudError> {
        let what = format!("GET /certs/{fp}");
        let r = self
            .http()
            .get(format!("{}/certs/{fp}", self.base))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let r = self.check(&what, r).await?;
        let c: CertsResponse = self.json(&what, r, MAX_SMALL_BODY_BYTES).await?;
        Ok(c.signing_cert_pem)
    }

    /// Makes sure `verifier` knows the signer `fp` an envelope names:
    /// fetches it by fingerprint when unknown (a device offline during a
    /// signing-key rotation meets the new signer this way) and checks it
    /// chains to the root with code signing. `Ok(true)`: newly learnt.
    pub async fn learn_signer(
        &self,
        verifier: &mut crate::verify::Verifier,
        fp: &str,
    ) -> Result<bool, CloudError> {
        if verifier.knows(fp) {
            return Ok(false);
        }
        let pem = self.signing_cert_by_fingerprint(fp).await?;
        verifier.add_signer(fp, pem.as_bytes())?;
        Ok(true)
    }

    /// `POST /register` (with the onboarding identity).
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, CloudError> {
        let r = self
            .http()
            .post(format!("{}/register", self.base))
            .json(req)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let r = self.check("POST /register", r).await?;
        self.json("POST /register", r, MAX_SMALL_BODY_BYTES).await
    }

    /// `GET /devices/<uuid>/config?wait=`: waits up to `wait` for a config
    /// whose ETag is not `etag`.
    pub async fn poll_config(
        &self,
        uuid: &str,
        etag: Option<&str>,
        wait: Duration,
    ) -> Result<Poll, CloudError> {
        let mut req = self
            .http()
            .get(format!(
                "{}/devices/{uuid}/config?wait={}",
                self.base,
                wait.as_secs()
            ))
            .timeout(wait + Duration::from_secs(30));
        if let Some(t) = etag {
            req = req.header(IF_NONE_MATCH, format!("\"{t}\""));
        }
        let r = req.send().await.map_err(|e| self.transport(e))?;
        let r = self.check("GET config", r).await?;
        match r.status() {
            StatusCode::NOT_MODIFIED => Ok(Poll::NotModified),
            StatusCode::NO_CONTENT => Ok(Poll::Empty),
            _ => {
                let etag = r
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim_matches('"').to_owned());
                let envelope = self.json("GET config", r, MAX_ENVELOPE_BYTES).await?;
                Ok(Poll::Changed { envelope, etag })
            }
        }
    }

    /// `POST /devices/<uuid>/info`.
    pub async fn post_info(&self, uuid: &str, info: &DeviceInfo) -> Result<(), CloudError> {
        let r = self
            .http()
            .post(format!("{}/devices/{uuid}/info", self.base))
            .json(info)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.check("POST info", r).await.map(drop)
    }

    /// `POST /devices/<uuid>/metrics`.
    pub async fn post_metrics(&self, uuid: &str, m: &DeviceMetrics) -> Result<(), CloudError> {
        let r = self
            .http()
            .post(format!("{}/devices/{uuid}/metrics", self.base))
            .json(m)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.check("POST metrics", r).await.map(drop)
    }

    /// `POST /devices/<uuid>/logs`: one gzip'd batch of JSON lines.
    pub async fn post_logs(
        &self,
        uuid: &str,
        seq: u64,
        gzipped: Vec<u8>,
    ) -> Result<LogAck, CloudError> {
        let r = self
            .http()
            .post(format!("{}/devices/{uuid}/logs", self.base))
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "gzip")
            .header(BATCH_HEADER, seq.to_string())
            .body(gzipped)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let r = self.check("POST logs", r).await?;
        self.json("POST logs", r, MAX_SMALL_BODY_BYTES).await
    }
}
