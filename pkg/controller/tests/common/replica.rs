//! `outpost-controller serve` replicas as real processes on one
//! PostgreSQL database, each with its own copy of the state directory
//! (as docs/controller-replicas.md tells operators to do), and simulated
//! devices that long-poll them over real mTLS.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outpost_api::cloud::{ConfigPayload, RegisterRequest, RegisterResponse, SignedEnvelope};
use outpost_controller::{layout, StateDir};

/// The controller binary of this package.
pub const BIN: &str = env!("CARGO_BIN_EXE_outpost-controller");

/// Copies the state directory's files (not the admin socket).
pub fn copy_state(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_state(&src, &dst);
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// One `serve` process.
pub struct Replica {
    pub state: StateDir,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Replica {
    /// Copies `src` to `dir` and serves it on 127.0.0.1 (a free port) with
    /// open onboarding on `database`.
    pub fn start(src: &StateDir, dir: &Path, database: &str) -> Replica {
        Self::start_with(src, dir, database, &[])
    }

    /// [`Replica::start`] with more `serve` arguments.
    pub fn start_with(src: &StateDir, dir: &Path, database: &str, extra: &[&str]) -> Replica {
        copy_state(src.root(), dir);
        let state = StateDir::new(dir);
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let mut child = Command::new(BIN)
            .arg("--state")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--open-onboarding"])
            .arg("--database")
            .arg(database)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(a) = line.strip_prefix("listening on https://") {
                    let _ = tx.send(a.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "replica {} did not start:\n{}",
                    dir.display(),
                    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
                )
            });
        Replica {
            state,
            addr,
            child: Some(child),
        }
    }

    /// `https://ADDR/api/v1`.
    pub fn base(&self) -> String {
        format!("https://{}/api/v1", self.addr)
    }

    /// Runs the admin CLI against this replica: exit status, stdout, stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .arg("--state")
            .arg(self.state.root())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// One server counter (`stats --json`).
    pub fn stat(&self, name: &str) -> u64 {
        let (ok, out, err) = self.cli(&["stats", "--json"]);
        assert!(ok, "stats: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["stats"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {out}"))
    }

    /// The server log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.root().join("serve.log")).unwrap_or_default()
    }

    /// SIGSTOP: the process stays, its connections hang.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        }
    }

    /// SIGKILL, no shutdown.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- log of replica {} ---\n{}",
                self.state.root().display(),
                self.log()
            );
        }
    }
}

/// A simulated device: registered over mTLS with the onboarding
/// certificate, then calling with its own.
#[derive(Clone)]
pub struct SimDevice {
    pub uuid: String,
    pub client: reqwest::Client,
}

/// Registers `serial` (open onboarding) through the replica at `base`.
pub async fn register(src: &StateDir, base: &str, serial: &str) -> SimDevice {
    let read = |f: &str| std::fs::read_to_string(src.file(f)).unwrap();
    let ca = read(layout::CA_CERT);
    let onboarding = super::client(
        &ca,
        Some((&read(layout::ONBOARD_CERT), &read(layout::ONBOARD_KEY))),
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let resp = onboarding
        .post(format!("{base}/register"))
        .json(&RegisterRequest {
            serial: serial.into(),
            csr_pem: super::csr(&key),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "registering {serial}");
    let r: RegisterResponse = resp.json().await.unwrap();
    SimDevice {
        uuid: r.uuid,
        client: super::client(&ca, Some((&r.cert_pem, &key.serialize_pem()))),
    }
}

/// What a device received.
pub struct Received {
    pub payload: ConfigPayload,
    pub etag: String,
    pub at: Instant,
    /// Index of the replica that delivered it.
    pub from: usize,
}

impl SimDevice {
    /// Long-polls replica `bases[start]` until a verified config of at
    /// least `min_generation` arrives; on a connection error (replica
    /// gone) it goes on with the next replica, as the agent would after
    /// reconnecting through a load balancer.
    pub async fn poll_until(
        &self,
        state: &StateDir,
        bases: &[String],
        start: usize,
        min_generation: u64,
        etag: Option<String>,
    ) -> Received {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut i = start;
        let mut etag = etag;
        loop {
            assert!(
                Instant::now() < deadline,
                "device {} got no config",
                self.uuid
            );
            let url = format!("{}/devices/{}/config?wait=60", bases[i], self.uuid);
            let mut req = self.client.get(url);
            if let Some(e) = &etag {
                req = req.header("if-none-match", format!("\"{e}\""));
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(_) => {
                    i = (i + 1) % bases.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match resp.status().as_u16() {
                200 => {
                    let header = resp.headers().get("etag").cloned();
                    let Ok(env) = resp.json::<SignedEnvelope>().await else {
                        i = (i + 1) % bases.len();
                        continue;
                    };
                    let at = Instant::now();
                    let payload = super::verify(state, &env);
                    let tag = header
                        .and_then(|h| h.to_str().ok().map(|t| t.trim_matches('"').to_owned()))
                        .expect("a 200 carries an ETag");
                    if payload.generation >= min_generation {
                        return Received {
                            payload,
                            etag: tag,
                            at,
                            from: i,
                        };
                    }
                    etag = Some(tag);
                }
                204 | 304 => {}
                503 => i = (i + 1) % bases.len(),
                s => panic!("device {}: config poll answered {s}", self.uuid),
            }
        }
    }
}

/// Waits until `cond` holds (checked every 100 ms), up to `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A temp directory path for replica `n` under `root`.
pub fn replica_dir(root: &Path, n: usize) -> PathBuf {
    root.join(format!("replica-{n}"))
}
