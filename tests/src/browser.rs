//! Headless Chromium driven over WebDriver (`chromedriver` started here,
//! `fantoccini` as the client), for the web console's tests. Debian's
//! `chromium` and `chromium-driver` packages (scripts/install-deps.sh).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rcgen::PublicKeyData;

use crate::controller::free_port;

/// A running chromedriver and one browser session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// The base64 SHA-256 of a PEM key's SubjectPublicKeyInfo (what Chromium's
/// `--ignore-certificate-errors-spki-list` takes: trust exactly that key).
pub fn spki_hash(key_pem: &str) -> String {
    use sha2::Digest;
    let key = rcgen::KeyPair::from_pem(key_pem).expect("admin key PEM");
    let digest = sha2::Sha256::digest(key.subject_public_key_info());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium that
    /// trusts the TLS key `trusted_key_pem` (the controller's admin key).
    pub async fn start(trusted_key_pem: &str) -> Browser {
        let port = free_port();
        // its own process group: chromedriver and the browsers it starts
        // are ended together, even when a test panics
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/install-deps.sh)");
        let profile = tempfile::Builder::new()
            .prefix("outpost-chromium")
            .tempdir_in("/tmp")
            .unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!(
                "--ignore-certificate-errors-spki-list={}",
                spki_hash(trusted_key_pem)
            ),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": args, "binary": "/usr/bin/chromium" }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver/chromium: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits (deadline-bound) for an element matching `css` whose text
    /// satisfies `ok`; returns that text (pages load after a click).
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_for(
            &format!("{css} on the page"),
            Duration::from_secs(30),
            || async {
                let t = self
                    .client
                    .find(Locator::Css(css))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                ok(&t).then_some(t)
            },
        )
        .await
    }

    /// Waits until `f` returns `Some`, polling the page (deadline-bound).
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let page = self.client.source().await.unwrap_or_default();
                panic!("timed out waiting for {what} (at {url:?}):\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ends the session, then chromedriver (dropping does the rest).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // the group this test started: chromedriver and its Chromium
        let pgid = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
