//! A QEMU guest driven through its serial console: boot, wait for the
//! shell, run commands and read their output and exit status, power off.
//!
//! The accelerator is the process's choice ([`accel::process_choice`]); a
//! boot under KVM whose console stays empty for [`KVM_SILENCE`] is killed
//! and booted again under TCG, which the rest of the process then uses.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_mkimage::{accel, Accel, AccelChoice, QemuOptions};

/// How long a boot under KVM may show nothing on its console before it is
/// retried under TCG (a kernel prints its banner at once under KVM).
pub const KVM_SILENCE: Duration = Duration::from_secs(15);

/// Bytes read from the console so far, and whether QEMU has closed it.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    /// Bytes of those from the console (stdout; the rest is QEMU's stderr).
    console: usize,
    closed: bool,
}

/// A running guest.
pub struct Vm {
    name: String,
    child: Child,
    stdin: ChildStdin,
    buf: Arc<(Mutex<Buffer>, Condvar)>,
    /// Where command output starts being looked for.
    cursor: usize,
    seq: u32,
    /// When QEMU was started.
    pub started: Instant,
    /// The accelerator it runs under.
    pub accel: Accel,
    /// The console transcript.
    pub log: PathBuf,
}

impl Vm {
    /// Starts QEMU under the process's accelerator; the console is copied to `log`.
    pub fn boot(name: &str, opts: &QemuOptions, log: &Path) -> Result<Vm> {
        let choice = accel::process_choice(&opts.kernel)?;
        Vm::boot_with(name, opts, log, &choice)
    }

    /// [`Vm::boot`] under `choice`. Under KVM with fallback, waits up to
    /// [`KVM_SILENCE`] for the first console byte; without one, kills QEMU
    /// (its transcript stays in `<log>.kvm`) and boots under TCG, which
    /// [`accel::process_choice`] answers from then on.
    pub fn boot_with(
        name: &str,
        opts: &QemuOptions,
        log: &Path,
        choice: &AccelChoice,
    ) -> Result<Vm> {
        println!("{name}: accelerator {} ({})", choice.accel, choice.reason);
        let mut vm = Vm::start(name, opts, log, choice.accel)?;
        if choice.accel != Accel::Kvm || !choice.fallback {
            return Ok(vm);
        }
        let why = match vm.wait_for_console(KVM_SILENCE) {
            Ok(at) => {
                println!(
                    "{name}: first console output under KVM after {:.2} s",
                    at.as_secs_f64()
                );
                return Ok(vm);
            }
            Err(e) => e,
        };
        drop(vm);
        let kept = log.with_extension("log.kvm");
        let _ = std::fs::rename(log, &kept);
        let tcg = accel::fall_back_to_tcg(format!(
            "{why:#} under KVM (QEMU killed, transcript {})",
            kept.display()
        ));
        println!("{name}: accelerator tcg ({})", tcg.reason);
        Vm::start(name, opts, log, Accel::Tcg)
    }

    /// Starts QEMU under `accel`.
    fn start(name: &str, opts: &QemuOptions, log: &Path, accel: Accel) -> Result<Vm> {
        let mut cmd = opts.command(accel);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .context("starting qemu-system-x86_64 (scripts/install-deps.sh installs it)")?;
        let stdin = child.stdin.take().context("qemu stdin")?;
        let buf: Arc<(Mutex<Buffer>, Condvar)> = Arc::default();
        let mut file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        for (mut src, tee) in [
            (
                Box::new(child.stdout.take().context("qemu stdout")?) as Box<dyn Read + Send>,
                true,
            ),
            (
                Box::new(child.stderr.take().context("qemu stderr")?) as Box<dyn Read + Send>,
                false,
            ),
        ] {
            let buf = buf.clone();
            let mut file = file.try_clone()?;
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                loop {
                    let n = src.read(&mut chunk).unwrap_or(0);
                    let (m, cv) = &*buf;
                    let mut b = m.lock().unwrap();
                    if n == 0 {
                        if tee {
                            b.closed = true;
                        }
                        cv.notify_all();
                        return;
                    }
                    let _ = file.write_all(&chunk[..n]);
                    b.bytes.extend_from_slice(&chunk[..n]);
                    if tee {
                        b.console += n;
                    }
                    cv.notify_all();
                }
            });
        }
        file.flush()?;
        Ok(Vm {
            name: name.to_owned(),
            child,
            stdin,
            buf,
            cursor: 0,
            seq: 0,
            started,
            accel,
            log: log.to_owned(),
        })
    }

    fn send(&mut self, s: &str) -> Result<()> {
        self.stdin.write_all(s.as_bytes())?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The last `n` bytes of the console (lossy text).
    fn console_tail(&self, n: usize) -> String {
        let b = self.buf.0.lock().unwrap();
        let from = b.bytes.len().saturating_sub(n);
        String::from_utf8_lossy(&b.bytes[from..])
            .replace('\r', "")
            .replace("\x1b[6n", "")
    }

    /// Waits until `find` matches the console text after the cursor;
    /// returns its result. Fails on timeout or when QEMU exits.
    fn wait<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.buf;
        let mut b = m.lock().unwrap();
        loop {
            let text =
                String::from_utf8_lossy(&b.bytes[self.cursor.min(b.bytes.len())..]).into_owned();
            if let Some(v) = find(&text) {
                return Ok(v);
            }
            if b.closed {
                bail!(
                    "{}: the console closed (QEMU exited) while waiting for {what}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "{}: timed out after {timeout:?} waiting for {what}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            b = cv.wait_timeout(b, deadline - now).unwrap().0;
        }
    }

    /// Waits for the first console byte; returns when it came (since QEMU
    /// started). Fails when QEMU exits or `timeout` passes first.
    pub fn wait_for_console(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = self.started + timeout;
        let (m, cv) = &*self.buf;
        let mut b = m.lock().unwrap();
        loop {
            if b.console > 0 {
                return Ok(self.started.elapsed());
            }
            if b.closed {
                let stderr = String::from_utf8_lossy(&b.bytes);
                let stderr: String = stderr.trim().chars().take(500).collect();
                bail!(
                    "{}: QEMU exited without console output: {stderr}",
                    self.name
                );
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("{}: no console output within {timeout:?}", self.name);
            }
            b = cv.wait_timeout(b, deadline - now).unwrap().0;
        }
    }

    /// Waits until the console shows `text`.
    #[allow(dead_code, reason = "tests/accel.rs uses it, tests/boot.rs does not")]
    pub fn wait_for_text(&mut self, text: &str, timeout: Duration) -> Result<()> {
        self.wait(timeout, &format!("{text:?}"), |t| t.find(text).map(|_| ()))
    }

    /// Waits for the console shell and switches its echo off (which also
    /// turns off busybox's line editing), so output parses cleanly.
    pub fn wait_for_shell(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        let mut k = 0;
        loop {
            k += 1;
            // The shell prints 2k, the echoed input shows $((k+k)): only real output matches.
            self.send(&format!("\necho @@READY$(({k}+{k}))@@\n"))?;
            let want = format!("@@READY{}@@", 2 * k);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{}: no shell on the console within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            match self.wait(left.min(Duration::from_secs(3)), "the shell", |t| {
                t.find(&want).map(|i| i + want.len())
            }) {
                Ok(end) => {
                    self.cursor += end;
                    break;
                }
                Err(e) if e.to_string().contains("closed") => return Err(e),
                Err(_) => {
                    // A character of a probe typed while the console was
                    // busy can be lost, leaving the shell in a continuation
                    // (`> `, an unclosed `$((`): the shell is up, so ^C is
                    // safe and discards the broken input.
                    if self.console_tail(64).trim_end().ends_with("\n>") {
                        self.send("\x03")?;
                    }
                    continue;
                }
            }
        }
        let at = self.started.elapsed();
        self.run("stty -echo", Duration::from_secs(30))?;
        Ok(at)
    }

    /// Runs `cmd` (one line) in the console shell; returns (exit status, output).
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
        self.seq += 1;
        let n = self.seq;
        // One line, so no prompt lands inside the output; a subshell, so
        // `exit` in `cmd` ends only the command.
        self.send(&format!("echo @@B{n}@@; ( {cmd} ); echo @@E{n}@@ $?\n"))?;
        let (begin, end) = (format!("@@B{n}@@"), format!("@@E{n}@@ "));
        let (out, status, consumed) = self.wait(timeout, &format!("`{cmd}`"), |t| {
            let b = t
                .match_indices(&begin)
                .find(|(i, _)| t[i + begin.len()..].starts_with(['\r', '\n']))?
                .0;
            let body_start = b + begin.len();
            let e = t[body_start..].find(&end)? + body_start;
            let digits: String = t[e + end.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let after = &t[e + end.len() + digits.len()..];
            if digits.is_empty() || !after.starts_with(['\r', '\n']) {
                return None;
            }
            let out = t[body_start..e]
                .replace('\r', "")
                .trim_matches('\n')
                .to_owned();
            Some((
                out,
                digits.parse::<i32>().unwrap_or(-1),
                e + end.len() + digits.len(),
            ))
        })?;
        self.cursor += consumed;
        Ok((status, out))
    }

    /// Runs `cmd` and fails unless it exits 0; returns its output.
    pub fn ok(&mut self, cmd: &str, timeout: Duration) -> Result<String> {
        let (status, out) = self.run(cmd, timeout)?;
        if status != 0 {
            bail!("{}: `{cmd}` exited {status}:\n{out}", self.name);
        }
        Ok(out)
    }

    /// `poweroff` in the guest (rcK stops the agent and unmounts /persist),
    /// then waits for QEMU to exit; kills it after `timeout`.
    pub fn poweroff(mut self, timeout: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        self.send("poweroff\n")?;
        while t0.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{}: QEMU exited with {status}; see {}",
                        self.name,
                        self.log.display()
                    );
                }
                return Ok(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!(
            "{}: no clean power-off within {timeout:?}; QEMU killed; see {}",
            self.name,
            self.log.display()
        )
    }
}

impl Vm {
    /// Waits for QEMU to exit by itself (a guest reset under `-no-reboot`:
    /// the watchdog firing, a `reboot`); returns how long that took.
    #[allow(dead_code, reason = "tests/slots.rs uses it, tests/boot.rs does not")]
    pub fn wait_exit(mut self, timeout: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "{}: QEMU exited with {status}; see {}",
                        self.name,
                        self.log.display()
                    );
                }
                return Ok(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{}: QEMU still running after {timeout:?}; see {}",
            self.name,
            self.log.display()
        )
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
