//! The reference controller (`outpost-controller`) on the host, for the
//! image's onboarding boot: `init` writes the CA, the server certificate for
//! 10.0.2.100 and the device's /config bundle; `serve` listens on a loopback
//! port the guest reaches through its `guestfwd`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where the guest finds the controller (the bundle's `server`).
pub const GUEST_ADDR: (&str, u16) = ("10.0.2.100", 8443);

/// A running `outpost-controller serve`, stopped on drop.
pub struct ControllerProcess {
    bin: PathBuf,
    state: PathBuf,
    /// Loopback port it serves the device API on.
    pub port: u16,
    serve: Child,
}

impl ControllerProcess {
    /// `init` (fresh state under `dir`, open onboarding) and `serve`.
    pub fn start(bin: &Path, dir: &Path) -> Result<ControllerProcess> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let state = dir.join("state");
        if state.exists() {
            std::fs::remove_dir_all(&state)?;
        }
        let _ = std::fs::remove_file(dir.join("controller.log"));
        let (ip, gport) = GUEST_ADDR;
        let out = Command::new(bin)
            .arg("--state")
            .arg(&state)
            .args(["init", "--server", &format!("{ip}:{gport}")])
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--open-onboarding",
            ])
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "outpost-controller init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let serve = spawn_serve(bin, &state, port)?;
        Ok(ControllerProcess {
            bin: bin.to_owned(),
            state,
            port,
            serve,
        })
    }

    /// Stops `serve`: the guest's connections to it are refused until
    /// [`ControllerProcess::restart`].
    #[allow(dead_code, reason = "tests/publish.rs uses it, tests/boot.rs does not")]
    pub fn stop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }

    /// `serve` again on the same state and port.
    #[allow(dead_code, reason = "tests/publish.rs uses it, tests/boot.rs does not")]
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.serve = spawn_serve(&self.bin, &self.state, self.port)?;
        Ok(())
    }

    /// The /config bundle `init` wrote.
    pub fn bundle(&self) -> PathBuf {
        self.state.join("device-config")
    }

    /// Runs an admin command against the serving controller; its stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "outpost-controller {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until a device has registered; returns its name.
    pub fn wait_for_device(&self, timeout: Duration) -> Result<String> {
        let t0 = Instant::now();
        loop {
            let list: serde_json::Value =
                serde_json::from_str(&self.admin(&["device", "list", "--json"])?)?;
            let name = list
                .as_array()
                .and_then(|a| a.first())
                .and_then(|d| d.get("name"))
                .and_then(|n| n.as_str());
            if let Some(n) = name {
                return Ok(n.to_owned());
            }
            if t0.elapsed() > timeout {
                bail!("no device registered with the controller within {timeout:?}: {list}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `serve` on `state` (it listens where `init` said), its output appended
/// to `controller.log` beside the state; waits until it listens.
fn spawn_serve(bin: &Path, state: &Path, port: u16) -> Result<Child> {
    let log_path = state.with_file_name("controller.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut serve = Command::new(bin)
        .arg("--state")
        .arg(state)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = serve.kill();
            let _ = serve.wait();
            bail!(
                "outpost-controller serve is not listening on 127.0.0.1:{port}; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(serve)
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}
