//! `outpost-controller` as a process: a private state directory, real TLS
//! on a loopback port, its admin CLI. With
//! `OUTPOST_CONTROLLER_BACKEND=postgres` it keeps its state in a private
//! PostgreSQL cluster (`serve --database`) instead of redb.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent::AgentEnv;
use crate::workspace_bin;

/// A reference controller under a temp state directory.
pub struct Controller {
    /// State directory.
    pub state: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The server process.
    pub child: Option<Child>,
    /// `127.0.0.1:<port>` of the HTTPS admin API and console, once enabled.
    pub admin_addr: Option<String>,
    /// The private PostgreSQL cluster and database URL (postgres backend).
    pub pg: Option<(outpost_controller::pgtest::Cluster, String)>,
    /// More `serve` flags (`--device-cert-lifetime 40s`, …).
    pub serve_args: Vec<String>,
}

/// A free loopback port (bound and released; good enough on a test box).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Controller {
    /// `outpost-controller init` with open onboarding plus `extra` flags.
    pub fn init(extra: &[&str]) -> Controller {
        let state = tempfile::Builder::new()
            .prefix("outpost-c")
            .tempdir_in("/tmp")
            .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let pg =
            (std::env::var("OUTPOST_CONTROLLER_BACKEND").as_deref() == Ok("postgres")).then(|| {
                let cluster = outpost_controller::pgtest::Cluster::start().unwrap();
                let url = cluster.create_db("outpost").unwrap();
                (cluster, url)
            });
        let c = Controller {
            state,
            addr,
            child: None,
            admin_addr: None,
            pg,
            serve_args: Vec::new(),
        };
        let mut args = vec![
            "init",
            "--server",
            c.addr.as_str(),
            "--name",
            "localhost",
            "--open-onboarding",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = c.cli(&args);
        assert_eq!(code, 0, "controller init failed:\n{out}\n{err}");
        c
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        self.state.path()
    }

    /// Snapshots the stored state while the server is stopped (the redb
    /// file, or a copy of the PostgreSQL database), for [`Self::restore`].
    pub fn backup(&self) {
        assert!(self.child.is_none(), "stop the controller first");
        match &self.pg {
            None => {
                let db = self.dir().join("controller.redb");
                std::fs::copy(&db, db.with_extension("redb.backup")).unwrap();
            }
            Some((c, _)) => {
                c.psql("postgres", "DROP DATABASE IF EXISTS outpost_backup")
                    .unwrap();
                c.psql(
                    "postgres",
                    "CREATE DATABASE outpost_backup TEMPLATE outpost",
                )
                .unwrap();
            }
        }
    }

    /// Puts the [`Self::backup`] back (server stopped).
    pub fn restore(&self) {
        assert!(self.child.is_none(), "stop the controller first");
        match &self.pg {
            None => {
                let db = self.dir().join("controller.redb");
                std::fs::copy(db.with_extension("redb.backup"), &db).unwrap();
            }
            Some((c, _)) => {
                c.psql("postgres", "DROP DATABASE outpost WITH (FORCE)")
                    .unwrap();
                c.psql(
                    "postgres",
                    "CREATE DATABASE outpost TEMPLATE outpost_backup",
                )
                .unwrap();
            }
        }
    }

    /// The device bundle `init` wrote.
    pub fn bundle(&self) -> PathBuf {
        self.dir().join("device-config")
    }

    /// Copies the bundle into a device's `/config`, with a serial number.
    pub fn install_bundle(&self, config_dir: &Path, serial: &str) {
        std::fs::create_dir_all(config_dir).unwrap();
        for e in std::fs::read_dir(self.bundle()).unwrap().flatten() {
            std::fs::copy(e.path(), config_dir.join(e.file_name())).unwrap();
        }
        std::fs::write(config_dir.join("serial"), serial).unwrap();
    }

    /// Makes the next `start` serve the HTTPS admin API and console on a
    /// loopback port; returns its base URL.
    pub fn enable_admin(&mut self) -> String {
        let addr = format!("127.0.0.1:{}", free_port());
        self.admin_addr = Some(addr.clone());
        format!("https://{addr}")
    }

    /// `token create NAME [--read-only]`: the token.
    pub fn token(&self, name: &str, read_only: bool) -> String {
        let mut args = vec!["token", "create", name];
        if read_only {
            args.push("--read-only");
        }
        let (code, out, err) = self.cli(&args);
        assert_eq!(code, 0, "token create: {err}");
        out.trim().to_owned()
    }

    /// Starts `serve` and waits until it listens.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "controller already running");
        let admin: Vec<String> = self
            .admin_addr
            .iter()
            .flat_map(|a| ["--admin-listen".to_owned(), a.clone()])
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("serve.log"))
            .unwrap();
        let mut cmd = Command::new(workspace_bin("outpost-controller"));
        if let Some((_, url)) = &self.pg {
            cmd.arg("serve").arg("--database").arg(url);
        } else {
            cmd.arg("serve");
        }
        let mut child = cmd
            .arg("--state")
            .arg(self.dir())
            .arg("--listen")
            .arg(&self.addr)
            .args(&admin)
            .args(&self.serve_args)
            .stdout(Stdio::piped())
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let mut told = false;
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if !told && line.contains("listening on") {
                    let _ = tx.send(());
                    told = true;
                }
                line.clear();
            }
        });
        self.child = Some(child);
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("controller did not start:\n{}", self.log());
        }
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("serve.log")).unwrap_or_default()
    }

    /// SIGTERMs the server and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs the admin CLI: exit code, stdout, stderr.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(workspace_bin("outpost-controller"))
            .arg("--state")
            .arg(self.dir())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `device list --json`.
    pub fn devices(&self) -> Vec<serde_json::Value> {
        let (code, out, err) = self.cli(&["device", "list", "--json"]);
        assert_eq!(code, 0, "device list: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("device list --json: {e}: {out}"))
    }

    /// Waits for a device with `serial` to be registered; returns its UUID.
    pub fn wait_device(&self, serial: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self
                .devices()
                .into_iter()
                .find(|d| d["serial"].as_str() == Some(serial))
            {
                return d["uuid"].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "device {serial} did not register:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `device set-config` with `yaml`.
    pub fn set_config(&self, device: &str, yaml: &str) -> (i32, String, String) {
        let f = self
            .dir()
            .join(format!("upload-{}.yaml", uuid::Uuid::new_v4()));
        std::fs::write(&f, yaml).unwrap();
        self.cli(&["device", "set-config", device, f.to_str().unwrap()])
    }

    /// `device status --json`.
    pub fn status(&self, device: &str) -> serde_json::Value {
        let (code, out, err) = self.cli(&["device", "status", device, "--json"]);
        assert_eq!(code, 0, "device status: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("device status --json: {e}: {out}"))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fresh device serial number.
pub fn serial() -> String {
    format!("test-{}", uuid::Uuid::new_v4())
}

/// A device wired to `ctl`: the bundle in its `/config`, no local config
/// file, a short controller backoff (`fast`: short info/metrics/log intervals).
pub fn device(ctl: &Controller, fast: bool) -> (AgentEnv, String) {
    let mut env = AgentEnv::new();
    let s = serial();
    ctl.install_bundle(&env.layout.config_dir(), &s);
    env.flags.extend(
        [
            "--controller-wait-secs",
            "30",
            "--controller-backoff-max-secs",
            "2",
        ]
        .map(String::from),
    );
    if fast {
        env.flags.extend(
            [
                "--info-interval-secs",
                "2",
                "--metrics-interval-secs",
                "1",
                "--log-flush-ms",
                "200",
            ]
            .map(String::from),
        );
    }
    (env, s)
}
