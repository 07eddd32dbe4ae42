//! Shared set-up for the controller's integration tests: a real state dir
//! (`init`), the real server in-process on 127.0.0.1:0 (real TLS, real
//! redb file or, with `OUTPOST_CONTROLLER_BACKEND=postgres`, a private
//! PostgreSQL cluster per harness), and reqwest clients with rustls
//! client configurations.

#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use outpost_api::cloud::{ConfigPayload, RegisterRequest, RegisterResponse, SignedEnvelope};
use outpost_controller::init::{init, InitOptions};
use outpost_controller::layout;
use outpost_controller::pgtest::Cluster;
use outpost_controller::state::Controller;
use outpost_controller::{Limits, ServeOptions, Server, StateDir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::oneshot;

pub mod replica;
pub mod sim;

/// A running controller.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub state: StateDir,
    pub addr: SocketAddr,
    /// The PostgreSQL URL when the backend is `postgres`.
    pub database: Option<String>,
    /// The private cluster (dropped after the server: see `Drop`).
    pub pg: Option<Cluster>,
    /// Device certificate policy (kept across restarts).
    pub certs: outpost_controller::certs::CertPolicy,
    controller: Option<Arc<Controller>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A registered device: its UUID and a client presenting its certificate.
pub struct Device {
    pub uuid: String,
    pub name: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub client: reqwest::Client,
}

/// The backend under test: `OUTPOST_CONTROLLER_BACKEND=redb` (default) or `postgres`.
pub fn postgres_backend() -> bool {
    match std::env::var("OUTPOST_CONTROLLER_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("redb") | Err(_) => false,
        Ok(other) => panic!("OUTPOST_CONTROLLER_BACKEND={other:?}: expected redb or postgres"),
    }
}

/// A private cluster with database `outpost`; returns it and the URL.
pub fn private_postgres() -> (Cluster, String) {
    let cluster = Cluster::start().expect("private PostgreSQL cluster");
    let url = cluster.create_db("outpost").expect("createdb outpost");
    (cluster, url)
}

/// `init` of a fresh state dir at `state`.
pub fn init_state(state: &StateDir) {
    init(
        state,
        &InitOptions {
            server: "127.0.0.1:8443".into(),
            names: vec!["localhost".into()],
            ..Default::default()
        },
    )
    .unwrap();
}

impl Harness {
    /// `init` in a temp dir, then serve with default limits.
    pub async fn start() -> Harness {
        Self::start_with(false, Limits::default()).await
    }

    /// `init` in a temp dir, then serve with `limits`.
    pub async fn start_with(open_onboarding: bool, limits: Limits) -> Harness {
        Self::start_opts(|o| {
            o.open_onboarding = open_onboarding;
            o.limits = limits;
        })
        .await
    }

    /// `init` in a temp dir, then serve with the options `tune` sets (the
    /// certificate policy is kept across [`Harness::restart`]).
    pub async fn start_opts(tune: impl FnOnce(&mut ServeOptions)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        init_state(&state);
        let (pg, database) = match postgres_backend() {
            true => {
                let (c, url) = tokio::task::spawn_blocking(private_postgres).await.unwrap();
                (Some(c), Some(url))
            }
            false => (None, None),
        };
        let mut opts = ServeOptions::new(state.clone());
        opts.listen = Some("127.0.0.1:0".into());
        opts.database = database;
        tune(&mut opts);
        let mut h = Self::serve(dir, state, opts).await;
        h.pg = pg;
        h
    }

    async fn serve(dir: tempfile::TempDir, state: StateDir, opts: ServeOptions) -> Harness {
        let database = opts.database.clone();
        let certs = opts.certs.clone();
        let server = Server::bind(opts).await.unwrap();
        let addr = server.local_addr();
        let controller = server.controller();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Harness {
            dir,
            state,
            addr,
            database,
            pg: None,
            certs,
            controller: Some(controller),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The running controller.
    pub fn controller(&self) -> &Arc<Controller> {
        self.controller.as_ref().expect("server running")
    }

    /// Stops the server and starts it again on the same address and state.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut opts = ServeOptions::new(self.state.clone());
        opts.listen = Some(self.addr.to_string());
        opts.database = self.database.clone();
        opts.certs = self.certs.clone();
        let server = Server::bind(opts).await.unwrap();
        self.controller = Some(server.controller());
        let (tx, rx) = oneshot::channel();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        }));
    }

    /// Stops the server and waits until it is gone.
    pub async fn stop(&mut self) {
        self.controller = None;
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// `https://127.0.0.1:PORT/api/v1<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}/api/v1{path}", self.addr)
    }

    pub fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.file(name)).unwrap()
    }

    /// A client trusting the root CA, without a client certificate.
    pub fn anonymous(&self) -> reqwest::Client {
        client(&self.file(layout::CA_CERT), None)
    }

    /// A client presenting the onboarding certificate.
    pub fn onboarding(&self) -> reqwest::Client {
        client(
            &self.file(layout::CA_CERT),
            Some((
                &self.file(layout::ONBOARD_CERT),
                &self.file(layout::ONBOARD_KEY),
            )),
        )
    }

    /// A client presenting `cert_pem`/`key_pem`.
    pub fn with_cert(&self, cert_pem: &str, key_pem: &str) -> reqwest::Client {
        client(&self.file(layout::CA_CERT), Some((cert_pem, key_pem)))
    }

    /// Registers `serial` with a new key; returns the status and the answer.
    pub async fn register_raw(&self, serial: &str, key: &rcgen::KeyPair) -> (u16, String) {
        let resp = self
            .onboarding()
            .post(self.url("/register"))
            .json(&RegisterRequest {
                serial: serial.into(),
                csr_pem: csr(key),
            })
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Adds `serial` to the onboarding list and registers it.
    pub async fn device(&self, name: &str, serial: &str) -> Device {
        self.controller().add_device(name, serial).await.unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let (status, body) = self.register_raw(serial, &key).await;
        assert_eq!(status, 201, "{body}");
        let r: RegisterResponse = serde_json::from_str(&body).unwrap();
        let key_pem = key.serialize_pem();
        Device {
            client: self.with_cert(&r.cert_pem, &key_pem),
            uuid: r.uuid,
            name: r.name,
            cert_pem: r.cert_pem,
            key_pem,
        }
    }

    /// Verifies an envelope as a device does (see [`verify`]).
    pub fn verify(&self, envelope: &SignedEnvelope) -> ConfigPayload {
        verify(&self.state, envelope)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Verifies an envelope as a device does: the signer is the signing
/// certificate, which chains to the root CA with the code-signing EKU, and
/// the signature verifies. Returns the payload.
pub fn verify(state: &StateDir, envelope: &SignedEnvelope) -> ConfigPayload {
    let read = |name: &str| std::fs::read_to_string(state.file(name)).unwrap();
    let ca_der = first_cert(&read(layout::CA_CERT));
    let signing_der = first_cert(&read(layout::SIGNING_CERT));
    assert_eq!(envelope.signer, hex::encode(sha(&signing_der)));
    assert_eq!(envelope.alg, "ECDSA_P256_SHA256");
    let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
    let ee = webpki::EndEntityCert::try_from(&signing_der).unwrap();
    const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        rustls::pki_types::UnixTime::now(),
        webpki::KeyUsage::required(CODE_SIGNING),
        None,
        None,
    )
    .expect("signing certificate chains to the root CA with codeSigning");
    let payload = BASE64.decode(&envelope.payload).unwrap();
    let signature = BASE64.decode(&envelope.signature).unwrap();
    ee.verify_signature(webpki::aws_lc_rs::ECDSA_P256_SHA256, &payload, &signature)
        .expect("signature verifies");
    serde_json::from_slice(&payload).unwrap()
}

pub fn sha(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

pub fn first_cert(pem: &str) -> CertificateDer<'static> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
}

/// A PEM CSR for `key`.
pub fn csr(key: &rcgen::KeyPair) -> String {
    rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(key)
        .unwrap()
        .pem()
        .unwrap()
}

/// The rustls client config the tests use (TLS 1.2+, aws-lc-rs).
pub fn tls_config(ca_pem: &str, identity: Option<(&str, &str)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(first_cert(ca_pem)).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots);
    match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![first_cert(cert)],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    }
}

/// A reqwest client with that config.
pub fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(ca_pem, identity))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// gzip of JSON lines of `LogEntry`.
pub fn log_batch(lines: &[outpost_api::cloud::LogEntry]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for l in lines {
        serde_json::to_writer(&mut gz, l).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    gz.finish().unwrap()
}

/// A small valid device config document.
pub fn doc(apps: usize) -> String {
    let mut s = String::from("apps:\n");
    for i in 0..apps {
        s.push_str(&format!(
            "  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a{i:02}\n    version: \"1\"\n    display_name: app{i}\n    app_num: {}\n    image: hello:latest\n",
            i + 1
        ));
    }
    s
}

/// Waits up to 5 s for `cond` (server-side counters are updated by the
/// connection's task, which may run after the client saw the outcome).
pub async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    true
}
