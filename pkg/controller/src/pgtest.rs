//! A private PostgreSQL cluster for tests and benchmarks: `initdb` in a
//! fresh directory, `postgres` on a unix socket in it (no TCP, no system
//! service), run as the `postgres` OS user when we are root (PostgreSQL
//! refuses to run as root). Stopped and removed on drop, also when a
//! test panics. Binaries come from `/usr/lib/postgresql/<newest>/bin`
//! (Debian's `postgresql` package).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};

/// A running private cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    owner: Option<User>,
    server: Option<Child>,
    /// TCP port with TLS ([`Cluster::enable_tls`]); the unix socket is
    /// named after it too.
    tls_port: Option<u16>,
}

/// Debian's newest PostgreSQL `bin` directory.
pub fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e} (install the `postgresql` package)"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "no /usr/lib/postgresql/*/bin/postgres".to_owned())
}

impl Cluster {
    /// `initdb` and start a cluster in a new directory under the temp dir.
    pub fn start() -> Result<Cluster, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "outpost-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let owner = if nix::unistd::geteuid().is_root() {
            let user = User::from_name("postgres")
                .map_err(|e| format!("looking up user postgres: {e}"))?
                .ok_or("no `postgres` OS user (install the `postgresql` package)")?;
            nix::unistd::chown(&dir, Some(user.uid), Some(user.gid))
                .map_err(|e| format!("chown {} to postgres: {e}", dir.display()))?;
            Some(user)
        } else {
            None
        };
        let mut me = Cluster {
            dir,
            bin: bin_dir()?,
            owner,
            server: None,
            tls_port: None,
        };
        let data = me.data();
        let out = me
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb {} failed: {}",
                data.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        me.resume()?;
        Ok(me)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.stdin(Stdio::null()).env("LC_ALL", "C");
        if let Some(port) = self.tls_port {
            cmd.env("PGPORT", port.to_string());
        }
        if let Some(u) = &self.owner {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        cmd
    }

    /// The URL of database `db` (`postgresql:///DB?host=DIR&user=postgres`).
    pub fn url(&self, db: &str) -> String {
        let port = self
            .tls_port
            .map(|p| format!("&port={p}"))
            .unwrap_or_default();
        format!(
            "postgresql:///{db}?host={}&user=postgres{port}",
            self.dir.display()
        )
    }

    /// Restarts the server listening also on 127.0.0.1:`port` with TLS
    /// only (`cert_pem` + `key_pem`; plain TCP is rejected by pg_hba).
    /// The unix socket stays, without TLS.
    pub fn enable_tls(&mut self, port: u16, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        let write = |name: &str, text: &str, mode: u32| -> Result<(), String> {
            use std::os::unix::fs::PermissionsExt;
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("writing {name}: {e}"))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {name}: {e}"))?;
            if let Some(u) = &self.owner {
                nix::unistd::chown(&path, Some(u.uid), Some(u.gid))
                    .map_err(|e| format!("chown {name}: {e}"))?;
            }
            Ok(())
        };
        write("server.crt", cert_pem, 0o644)?;
        write("server.key", key_pem, 0o600)?;
        write(
            "hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            0o644,
        )?;
        self.stop_fast();
        self.tls_port = Some(port);
        self.resume()
    }

    /// Creates database `name`; returns its URL.
    pub fn create_db(&self, name: &str) -> Result<String, String> {
        let out = self
            .command("createdb")
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres", name])
            .output()
            .map_err(|e| format!("running createdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "createdb {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(self.url(name))
    }

    /// Runs SQL in database `db` with `psql` and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self
            .command("psql")
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-U",
                "postgres",
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .map_err(|e| format!("running psql: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "psql {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&mut self) -> Result<(), String> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = std::fs::File::create(self.dir.join("postgres.log"))
            .map_err(|e| format!("creating the server log: {e}"))?;
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .args(match self.tls_port {
                None => vec!["-c".to_owned(), "listen_addresses=".to_owned()],
                Some(port) => {
                    let file = |n: &str| self.dir.join(n).display().to_string();
                    [
                        "listen_addresses=127.0.0.1".to_owned(),
                        format!("port={port}"),
                        "ssl=on".to_owned(),
                        format!("ssl_cert_file={}", file("server.crt")),
                        format!("ssl_key_file={}", file("server.key")),
                        format!("hba_file={}", file("hba.conf")),
                    ]
                    .into_iter()
                    .flat_map(|c| ["-c".to_owned(), c])
                    .collect()
                }
            })
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self
                .command("pg_isready")
                .arg("-h")
                .arg(&self.dir)
                .args(["-U", "postgres", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                self.server = None;
                return Err(format!(
                    "postgres exited ({status}): {}",
                    std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                return Err("postgres did not accept connections within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with a fast shutdown (as `pg_ctl stop -m fast`:
    /// clients are disconnected) and waits until it is gone.
    pub fn stop_fast(&mut self) {
        if let Some(mut child) = self.server.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let _ = kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_fast();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
