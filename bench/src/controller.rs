//! `outpost-controller` as a process for the benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Result};

/// A reference controller process under a temp state directory.
pub struct Controller {
    /// State directory.
    pub state: tempfile::TempDir,
    /// The server.
    pub child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    bin: PathBuf,
}

impl Controller {
    /// `init` (open onboarding) + `serve` on a free loopback port.
    pub fn start(bin: &Path) -> Result<Controller> {
        Self::start_on(bin, None, None)
    }

    /// [`Controller::start`] with `serve --database URL` (PostgreSQL);
    /// `copy_of`: a copy of that replica's state dir instead of a new `init`.
    pub fn start_on(
        bin: &Path,
        database: Option<&str>,
        copy_of: Option<&Controller>,
    ) -> Result<Controller> {
        let state = tempfile::Builder::new()
            .prefix("outpost-bench-ctl")
            .tempdir_in("/tmp")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        match copy_of {
            Some(other) => {
                let st = Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", other.state.path().display()))
                    .arg(state.path())
                    .status()?;
                if !st.success() {
                    bail!("copying the state dir failed");
                }
                let _ = std::fs::remove_file(state.path().join("admin.sock"));
            }
            None => {
                let st = Command::new(bin)
                    .arg("--state")
                    .arg(state.path())
                    .args(["init", "--server", &addr, "--open-onboarding"])
                    .stdout(Stdio::null())
                    .status()?;
                if !st.success() {
                    bail!("outpost-controller init failed");
                }
            }
        }
        let mut cmd = Command::new(bin);
        cmd.arg("--state")
            .arg(state.path())
            .args(["serve", "--listen", &addr]);
        if let Some(url) = database {
            cmd.args(["--database", url, "--open-onboarding"]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env("RUST_LOG", "warn")
            .spawn()?;
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut r = std::io::BufReader::new(out);
        use std::io::BufRead;
        while !line.contains("listening on") {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                bail!("controller exited before listening");
            }
        }
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        Ok(Controller {
            state,
            child,
            addr,
            bin: bin.to_path_buf(),
        })
    }

    /// Runs the admin CLI; stdout on success.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("--state")
            .arg(self.state.path())
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "outpost-controller {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The device bundle `init` wrote.
    pub fn bundle(&self) -> PathBuf {
        self.state.path().join("device-config")
    }

    /// (RSS KiB, CPU seconds user+system).
    pub fn usage(&self) -> (u64, f64) {
        let pid = self.child.id();
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0);
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        (rss, ticks as f64 / 100.0)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
