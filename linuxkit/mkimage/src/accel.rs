//! Which QEMU accelerator boots the image. KVM is trusted only after a KVM
//! guest has been seen to print on its serial console: on some hosts
//! `/dev/kvm` opens but QEMU aborts setting up the vCPU, on others QEMU
//! runs but the guest never executes (not one console byte), and waiting
//! for a shell there hangs until a test's deadline. TCG is slower but
//! always works.
//!
//! [`choose`] is the decision as a pure function; [`detect`] feeds it the
//! environment, `/dev/kvm` and a console probe ([`probe_kvm_console`]);
//! [`process_choice`] caches it for the process and [`fall_back_to_tcg`]
//! demotes it when a real boot under KVM stays silent after all.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The environment variable that forces an accelerator: `kvm` or `tcg`
/// (unset, empty or `auto`: probe).
pub const ACCEL_ENV: &str = "OUTPOST_QEMU_ACCEL";

/// How long the probe waits for a KVM guest's first console byte. A kernel
/// prints its banner within a fraction of a second under KVM.
pub const PROBE_WAIT: Duration = Duration::from_secs(5);

/// A QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's software emulation, one vCPU ([`Accel::vcpus`]).
    Tcg,
}

impl Accel {
    /// The `-accel` value.
    pub fn qemu_arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// How many of the `wanted` vCPUs the guest gets. Under TCG: one.
    /// Multi-threaded TCG with two vCPUs on a two-core host hung guests in
    /// CI for minutes in soft lockups ("CPU#0 stuck for 22s [runc]" and
    /// CPU#1 likewise at once, no shell within 300 s): a vCPU that spins
    /// waiting for the other (TLB shootdown, spinlock) burns its host core
    /// while the other vCPU's thread waits for one. A single vCPU never
    /// waits on another, and the guest's work here (boot, containerd, one
    /// app) is sequential enough that a second emulated CPU bought little.
    pub fn vcpus(self, wanted: u32) -> u32 {
        match self {
            Accel::Kvm => wanted,
            Accel::Tcg => wanted.min(1),
        }
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What a KVM guest did in the console probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The kernel printed on its console this long after QEMU started: KVM works.
    Printed(Duration),
    /// QEMU exited (KVM aborted at start); its exit status and stderr.
    Exited(String),
    /// QEMU ran for this long and the guest printed nothing: KVM hangs here.
    Silent(Duration),
    /// The probe could not run (no kernel to boot, QEMU missing); why.
    NotRun(String),
}

/// The accelerator to use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    /// The accelerator.
    pub accel: Accel,
    /// Whether a boot under KVM that prints nothing may be killed and
    /// retried under TCG. False when KVM is forced, so that a person can
    /// debug the hang.
    pub fallback: bool,
    /// Why, for the log.
    pub reason: String,
}

impl AccelChoice {
    /// TCG, for `reason`.
    pub fn tcg(reason: impl Into<String>) -> AccelChoice {
        AccelChoice {
            accel: Accel::Tcg,
            fallback: false,
            reason: reason.into(),
        }
    }
}

/// The decision. `over` is the value of [`ACCEL_ENV`]; `kvm_opens` whether
/// `/dev/kvm` opens read-write; `probe` runs the console probe, called only
/// when the answer depends on it. A forced `kvm` is used as is, without
/// fallback (QEMU reports it if /dev/kvm is unusable); a forced `tcg` never
/// touches KVM; otherwise KVM only when its guest printed, with fallback.
pub fn choose(
    over: Option<&str>,
    kvm_opens: bool,
    probe: impl FnOnce() -> ProbeOutcome,
) -> Result<AccelChoice> {
    match over.map(str::trim) {
        Some("kvm") => {
            let mut reason = format!("forced by {ACCEL_ENV}=kvm, no fallback to TCG");
            if !kvm_opens {
                reason.push_str("; /dev/kvm does not open, so QEMU will fail");
            }
            return Ok(AccelChoice {
                accel: Accel::Kvm,
                fallback: false,
                reason,
            });
        }
        Some("tcg") => return Ok(AccelChoice::tcg(format!("forced by {ACCEL_ENV}=tcg"))),
        None | Some("" | "auto") => {}
        Some(other) => {
            return Err(Error::Accel {
                value: other.to_owned(),
            })
        }
    }
    if !kvm_opens {
        return Ok(AccelChoice::tcg("/dev/kvm does not open read-write"));
    }
    Ok(match probe() {
        ProbeOutcome::Printed(after) => AccelChoice {
            accel: Accel::Kvm,
            fallback: true,
            reason: format!(
                "a KVM guest printed on its console {:.2} s after QEMU started",
                after.as_secs_f64()
            ),
        },
        ProbeOutcome::Exited(why) => {
            AccelChoice::tcg(format!("QEMU exited under KVM at start: {why}"))
        }
        ProbeOutcome::Silent(after) => AccelChoice::tcg(format!(
            "/dev/kvm opens, but a KVM guest printed nothing on its console within {:.0} s",
            after.as_secs_f64()
        )),
        ProbeOutcome::NotRun(why) => AccelChoice::tcg(format!("KVM not probed: {why}")),
    })
}

/// Whether `/dev/kvm` opens read-write.
pub fn dev_kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The kernel the probe boots: `image_kernel` (the image's `vmlinuz`) when
/// it exists, else the newest-named `/boot/vmlinuz-*` of the host.
pub fn probe_kernel(image_kernel: &Path) -> Option<PathBuf> {
    if image_kernel.is_file() {
        return Some(image_kernel.to_owned());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Boots `kernel` (no initrd) with `console=ttyS0` under `-accel kvm` and
/// waits up to `wait` for its first console byte; kills QEMU after.
pub fn probe_kvm_console(kernel: &Path, wait: Duration) -> ProbeOutcome {
    let spawned = Command::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-machine", "q35", "-cpu", "max"])
        .args(["-m", "256", "-smp", "1", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(kernel)
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let started = Instant::now();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return ProbeOutcome::NotRun(format!("starting qemu-system-x86_64: {e}")),
    };
    // First console byte (true) or end of the console (false).
    let (tx, rx) = mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let _ = tx.send(matches!(out.read(&mut b), Ok(n) if n > 0));
        });
    }
    // stderr, bounded: QEMU's reason when it exits.
    let err = child.stderr.take().map(|e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.take(2048).read_to_string(&mut s);
            s
        })
    });
    let seen = rx.recv_timeout(wait);
    let elapsed = started.elapsed();
    let _ = child.kill();
    let status = child.wait();
    match seen {
        Ok(true) => ProbeOutcome::Printed(elapsed),
        Err(mpsc::RecvTimeoutError::Timeout) => ProbeOutcome::Silent(elapsed),
        // The console closed without a byte: QEMU exited.
        Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            ProbeOutcome::Exited(format!("{status}: {}", stderr.trim()))
        }
    }
}

/// [`choose`] for this host: [`ACCEL_ENV`], `/dev/kvm`, and the console
/// probe with [`probe_kernel`]`(image_kernel)`. Not cached.
pub fn detect(image_kernel: &Path) -> Result<AccelChoice> {
    let over = std::env::var(ACCEL_ENV).ok();
    choose(over.as_deref(), dev_kvm_opens(), || {
        match probe_kernel(image_kernel) {
            Some(k) => probe_kvm_console(&k, PROBE_WAIT),
            None => ProbeOutcome::NotRun(format!(
                "no kernel to boot ({} and /boot/vmlinuz-* missing)",
                image_kernel.display()
            )),
        }
    })
}

static PROCESS: Mutex<Option<AccelChoice>> = Mutex::new(None);

/// The accelerator for this process: [`detect`] on the first call, the same
/// answer later (or TCG after [`fall_back_to_tcg`]).
pub fn process_choice(image_kernel: &Path) -> Result<AccelChoice> {
    let mut p = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = &*p {
        return Ok(c.clone());
    }
    let c = detect(image_kernel)?;
    *p = Some(c.clone());
    Ok(c)
}

/// Records that KVM failed a real boot (`reason`): every later
/// [`process_choice`] answers TCG. Returns that choice.
pub fn fall_back_to_tcg(reason: impl Into<String>) -> AccelChoice {
    let c = AccelChoice::tcg(format!(
        "{}; TCG from now on in this process",
        reason.into()
    ));
    *PROCESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
    c
}

#[cfg(test)]
mod tests;
