//! One repository on one registry over the OCI distribution API: the HTTP
//! client (rustls, optional private CA, proxy from the environment) and
//! the authentication dance around each request.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::Mutex;

use super::auth::{parse_challenge, Challenge, Credentials};
use super::error::PullError;
use super::Reference;

/// Most bytes read of a token endpoint's answer.
pub const MAX_TOKEN_BYTES: usize = 64 << 10;
/// Most bytes read of an error answer's body (a few hundred are shown).
pub const MAX_ERROR_BODY_BYTES: usize = 4 << 10;

/// A body read with a limit.
pub(crate) enum Body {
    /// The whole body, within the limit.
    Full(Vec<u8>),
    /// The body is longer than the limit: its Content-Length, or the bytes
    /// seen when reading stopped.
    TooLarge(u64),
}

/// Reads `resp`'s body, refusing (before reading, by its Content-Length,
/// or as soon as it passes the limit) one longer than `limit` bytes.
pub(crate) async fn read_limited(mut resp: Response, limit: usize) -> Result<Body, reqwest::Error> {
    if let Some(n) = resp.content_length().filter(|n| *n > limit as u64) {
        return Ok(Body::TooLarge(n));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let seen = out.len() + chunk.len();
        if seen > limit {
            return Ok(Body::TooLarge(seen as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Body::Full(out))
}

/// How to reach a registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Credentials for Basic auth or for the token endpoint.
    pub credentials: Option<Credentials>,
    /// Extra trusted CA certificates (PEM) for a private registry.
    pub ca_pem: Option<Vec<u8>>,
    /// Speak plain HTTP instead of HTTPS (a loopback or lab registry).
    pub plain_http: bool,
}

/// A client for one repository; clones share the connection pool.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    /// Registry host (`host:port`).
    pub registry: String,
    /// Repository path.
    pub repository: String,
    credentials: Option<Credentials>,
    /// The `Authorization` value that last worked (never logged).
    auth: Mutex<Option<HeaderValue>>,
}

impl Registry {
    /// A client for `reference`'s repository.
    pub fn new(reference: &Reference, opts: &RegistryOptions) -> Result<Registry, PullError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("outpost/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &opts.ca_pem {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| PullError::Client {
                    registry: reference.registry.clone(),
                    problem: format!("CA certificate does not parse: {e}"),
                })?;
            if certs.is_empty() {
                return Err(PullError::Client {
                    registry: reference.registry.clone(),
                    problem: "CA file holds no PEM certificate".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| PullError::Client {
            registry: reference.registry.clone(),
            problem: e.to_string(),
        })?;
        let scheme = if opts.plain_http { "http" } else { "https" };
        Ok(Registry {
            http,
            base: format!(
                "{scheme}://{}/v2/{}",
                reference.registry, reference.repository
            ),
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            credentials: opts.credentials.clone(),
            auth: Mutex::new(None),
        })
    }

    /// `…/v2/<repo>/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Sends the request `build` makes, answering one auth challenge.
    /// `build` is called again for the retry (bodies must be re-creatable).
    pub(crate) async fn send<F>(&self, what: &str, build: F) -> Result<Response, PullError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let mut tried_fresh = false;
        loop {
            let current = self.auth.lock().await.clone();
            let mut req = build(&self.http);
            if let Some(v) = &current {
                req = req.header(AUTHORIZATION, v.clone());
            }
            let resp = req.send().await.map_err(|e| self.http_err(what, e))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if tried_fresh {
                return Err(self.unauthorized());
            }
            tried_fresh = true;
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge)
                .ok_or_else(|| self.unauthorized())?;
            let value = self.answer(&challenge).await?;
            *self.auth.lock().await = Some(value);
        }
    }

    /// The `Authorization` value answering `challenge`.
    async fn answer(&self, challenge: &Challenge) -> Result<HeaderValue, PullError> {
        let text = match challenge {
            Challenge::Basic => self
                .credentials
                .as_ref()
                .ok_or_else(|| self.unauthorized())?
                .basic_header(),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => format!("Bearer {}", self.token(realm, service, scope).await?),
        };
        let mut v = HeaderValue::from_str(&text).map_err(|_| self.unauthorized())?;
        v.set_sensitive(true);
        Ok(v)
    }

    /// Fetches a bearer token from the challenge's realm.
    async fn token(
        &self,
        realm: &str,
        service: &Option<String>,
        scope: &Option<String>,
    ) -> Result<String, PullError> {
        let mut url = reqwest::Url::parse(realm).map_err(|e| PullError::Client {
            registry: self.registry.clone(),
            problem: format!("token realm {realm:?}: {e}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            let default_scope = format!("repository:{}:pull", self.repository);
            q.append_pair("scope", scope.as_deref().unwrap_or(&default_scope));
        }
        let mut req = self.http.get(url);
        if let Some(c) = &self.credentials {
            req = req.basic_auth(&c.username, Some(c.password.expose()));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.http_err("fetching a token", e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(self.unauthorized());
        }
        let resp = self.check(resp, "fetching a token", "token").await?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let what = "reading the token response";
        let body = match read_limited(resp, MAX_TOKEN_BYTES).await {
            Ok(Body::Full(b)) => b,
            Ok(Body::TooLarge(n)) => {
                return Err(self.manifest_err(format!(
                    "{what}: {n} bytes or more, more than the limit of {MAX_TOKEN_BYTES}"
                )))
            }
            Err(e) => return Err(self.http_err(what, e)),
        };
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| self.manifest_err(format!("decoding the token response: {e}")))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| PullError::Manifest {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                problem: "token endpoint returned no token".into(),
            })
    }

    /// Turns a non-success status into an error (404 → `NotFound`).
    pub(crate) async fn check(
        &self,
        resp: Response,
        what: &str,
        object: &str,
    ) -> Result<Response, PullError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::NOT_FOUND {
            return Err(PullError::NotFound {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
                object: object.to_owned(),
            });
        }
        if status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized());
        }
        let body = match read_limited(resp, MAX_ERROR_BODY_BYTES).await {
            Ok(Body::Full(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Body::TooLarge(n)) => format!("(a body of {n} bytes or more, not read)"),
            Err(_) => String::new(),
        };
        Err(PullError::Status {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            what: what.to_owned(),
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        })
    }

    /// GET (or HEAD) `path` with `Accept`/`Range` headers.
    pub(crate) async fn get(
        &self,
        method: Method,
        what: &str,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Result<Response, PullError> {
        let url = self.url(path);
        self.send(what, |h| {
            let mut r = h.request(method.clone(), &url);
            for (k, v) in headers {
                r = r.header(*k, v);
            }
            r
        })
        .await
    }

    pub(crate) fn http_err(&self, what: &str, source: reqwest::Error) -> PullError {
        PullError::Http {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            what: what.to_owned(),
            source,
        }
    }

    pub(crate) fn unauthorized(&self) -> PullError {
        PullError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            with_credentials: self.credentials.is_some(),
        }
    }

    pub(crate) fn manifest_err(&self, problem: String) -> PullError {
        PullError::Manifest {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            problem,
        }
    }
}
