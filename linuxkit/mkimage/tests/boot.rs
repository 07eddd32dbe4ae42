//! Boot test of the device image (`make image-test`, or
//! `cargo test [--release] -p outpost-mkimage --test boot -- --include-ignored`
//! after `cargo build [--release] -p outpost-agent -p memlogd -p outpost-baseos -p outpost-controller`).
//! It is `#[ignore]`d otherwise: it needs those binaries (from the profile
//! this test was built in) and QEMU, and fails (does not skip) when one is
//! missing.
//!
//! Builds the image from `linuxkit/outpost.yml` with a /config holding a
//! device.yaml for the `hello` demo app, boots it in QEMU (KVM only where a
//! KVM guest prints on its console, else TCG: `outpost_mkimage::accel`;
//! each boot prints which and why) with restricted user networking, and on the serial console checks
//! that outpostd starts, `hello` reaches RUNNING (`outpost list`) and its
//! output is in memlogd (`logread`). Then it powers the guest off, empties
//! the CONFIG partition and boots the same disk again: the app must come
//! back RUNNING from the checkpoint in /persist alone.
//!
//! Boot 3 onboards: the host runs `outpost-controller
//! serve`, /config holds the bundle of `outpost-controller init`, the guest
//! reaches the controller at 10.0.2.100:8443 through its `guestfwd`, and a
//! config pushed with `device set-config` adds a second app. Onboarding plugs
//! in through [`Controller`].

mod ctl;
mod vm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ctl::ControllerProcess;
use outpost_mkimage::{build, disk, Accel, BuildOptions, DiskSizes, GuestForward, QemuOptions};
use vm::Vm;

const HELLO_UUID: &str = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10";
const DEVICE_YAML: &str = r#"# Written by the boot test: the demo app, from the OCI layout in the image.
generation: 1
apps:
  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10
    version: "1"
    display_name: hello
    app_num: 1
    image: hello:latest
    resources: { memory_kib: 32768, vcpus: 1 }
    env: { GREETING: boot-test }
    stop_timeout: 5s
"#;

/// The host side of onboarding: [`NoController`] for the local boots,
/// [`ControllerProcess`] for the onboarding boot.
trait Controller {
    /// Files for /config on the given boot (1-based), written into `dir`
    /// (which already holds what the test itself puts there). A controller
    /// adds `server`, `root-certificate.pem`, `onboard.cert.pem`,
    /// `onboard.key.pem` (and optionally `bootstrap-config.json`), as
    /// `outpost-controller init` writes them.
    fn config(&mut self, boot: u32, dir: &Path) -> Result<()>;
    /// Host services the guest may reach (e.g. 10.0.2.100:8443 → the
    /// port `outpost-controller serve` listens on).
    fn forwards(&self) -> Vec<GuestForward>;
    /// Called once the agent answers in the guest: e.g. wait until the
    /// device has onboarded and fetched its config.
    fn after_agent_started(&mut self, vm: &mut Vm) -> Result<()>;
}

/// No controller: the device runs from /config/device.yaml, then from its checkpoint.
struct NoController;

impl Controller for NoController {
    fn config(&mut self, _boot: u32, _dir: &Path) -> Result<()> {
        Ok(())
    }
    fn forwards(&self) -> Vec<GuestForward> {
        Vec::new()
    }
    fn after_agent_started(&mut self, _vm: &mut Vm) -> Result<()> {
        Ok(())
    }
}

/// A host TCP service the guest may reach only through its `guestfwd`
/// (answers every connection with one line): proves the forwarding the
/// controller will use, and that restricted networking blocks the rest.
struct HostProbe {
    port: u16,
}

const PROBE_REPLY: &str = "outpost-host-ok";
const PROBE_GUEST: (&str, u16) = ("10.0.2.101", 9000);

impl HostProbe {
    fn start() -> Result<HostProbe> {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut line = String::new();
                let _ = BufReader::new(&s).read_line(&mut line);
                let _ = writeln!(s, "{PROBE_REPLY}");
            }
        });
        Ok(HostProbe { port })
    }

    fn forward(&self) -> GuestForward {
        GuestForward {
            guest_ip: PROBE_GUEST.0.into(),
            guest_port: PROBE_GUEST.1,
            host_port: self.port,
        }
    }
}

/// What the controller pushes in boot 3: `hello` as before plus `hello2`.
const PUSHED_YAML: &str = r#"# Pushed by the boot test through outpost-controller set-config.
generation: 1
apps:
  - uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10
    version: "1"
    display_name: hello
    app_num: 1
    image: hello:latest
    resources: { memory_kib: 32768, vcpus: 1 }
    env: { GREETING: boot-test }
    stop_timeout: 5s
  - uuid: 3b7e9d21-4c5a-4f8b-9e6d-1a2b3c4d5e6f
    version: "1"
    display_name: hello2
    app_num: 2
    image: hello:latest
    resources: { memory_kib: 32768, vcpus: 1 }
    env: { GREETING: from-the-controller }
    stop_timeout: 5s
"#;

impl Controller for ControllerProcess {
    fn config(&mut self, _boot: u32, dir: &Path) -> Result<()> {
        for e in std::fs::read_dir(self.bundle())? {
            let e = e?;
            std::fs::copy(e.path(), dir.join(e.file_name()))?;
        }
        Ok(())
    }

    fn forwards(&self) -> Vec<GuestForward> {
        vec![GuestForward {
            guest_ip: ctl::GUEST_ADDR.0.into(),
            guest_port: ctl::GUEST_ADDR.1,
            host_port: self.port,
        }]
    }

    fn after_agent_started(&mut self, vm: &mut Vm) -> Result<()> {
        let t0 = Instant::now();
        let name = self.wait_for_device(Duration::from_secs(120))?;
        println!(
            "boot 3: device {name} registered {:.1} s after the agent answered",
            secs(t0.elapsed())
        );
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), PUSHED_YAML)?;
        let pushed = Instant::now();
        println!(
            "boot 3: {}",
            self.admin(&[
                "device",
                "set-config",
                &name,
                &file.path().to_string_lossy()
            ])?
            .trim()
        );
        vm.ok(
            "i=0; until outpost list 2>/dev/null | grep -q '^hello2 .*RUNNING'; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.2; done",
            Duration::from_secs(180),
        )
        .context("the pushed app hello2 did not reach RUNNING")?;
        println!(
            "boot 3: pushed config → hello2 RUNNING on the console in {:.1} s",
            secs(pushed.elapsed())
        );
        // The controller hears it back through the device's info.
        let t1 = Instant::now();
        loop {
            let list: serde_json::Value =
                serde_json::from_str(&self.admin(&["device", "list", "--json"])?)?;
            let d = &list[0];
            if d["config_applied"] == d["config_set"] && d["app_states"]["RUNNING"] == 2 {
                println!(
                    "boot 3: controller sees generation {} applied, 2 apps RUNNING",
                    d["config_applied"]
                );
                return Ok(());
            }
            if t1.elapsed() > Duration::from_secs(60) {
                bail!("boot 3: the controller does not see the pushed config applied: {d}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The controller is gone: the device must bring the pushed apps back from
/// its checkpoint alone.
struct ControllerGone;

impl Controller for ControllerGone {
    fn config(&mut self, _boot: u32, _dir: &Path) -> Result<()> {
        Ok(())
    }

    fn forwards(&self) -> Vec<GuestForward> {
        Vec::new()
    }

    fn after_agent_started(&mut self, vm: &mut Vm) -> Result<()> {
        let t0 = Instant::now();
        vm.ok(
            "i=0; until outpost list 2>/dev/null | grep -q '^hello2 .*RUNNING'; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.2; done",
            Duration::from_secs(180),
        )
        .context("boot 4: the pushed app hello2 did not come back from the checkpoint")?;
        let v = vm.ok("outpost version", Duration::from_secs(30))?;
        if !v.contains("from checkpoint") {
            bail!("boot 4: the config in effect is not the checkpoint:\n{v}");
        }
        println!(
            "boot 4 (controller down): hello2 RUNNING from the checkpoint {:.1} s after the agent answered",
            secs(t0.elapsed())
        );
        Ok(())
    }
}

/// The profile dir this test binary was built in (`<target>/<profile>`,
/// from its path `<target>/<profile>/deps/boot-…`), where the image's
/// binaries are taken from.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let deps = exe.parent().context("test binary dir")?;
    let dir = deps.parent().context("target profile dir")?.to_owned();
    for bin in [
        "outpostd",
        "outpost",
        "memlogd",
        "logread",
        "logwrite",
        "outpost-controller",
        "outpost-slot",
    ] {
        if !dir.join(bin).is_file() {
            bail!(
                "{} not found: run `make image-test` (or build the binaries: \
                 cargo build -p outpost-agent -p memlogd -p outpost-baseos -p outpost-controller, \
                 in the profile this test runs in)",
                dir.join(bin).display()
            );
        }
    }
    Ok(dir)
}

/// Boot timings of one boot, seconds.
#[derive(Debug)]
struct Times {
    /// The accelerator the boot ran under.
    accel: Accel,
    /// QEMU start → shell answering on the console (host clock).
    shell: f64,
    /// Guest uptime when outpostd answered on its admin socket.
    agent_guest: f64,
    /// Guest uptime when `outpost list` first showed hello RUNNING.
    running_guest: f64,
    /// QEMU start → RUNNING seen on the console (host clock).
    running_host: f64,
    /// Guest uptime of the app's first output line (memlogd's receive time).
    first_output: f64,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Boots once and checks the agent and the app; returns the timings.
fn boot_and_check(
    n: u32,
    opts: &QemuOptions,
    out: &Path,
    ctl: &mut dyn Controller,
    expect_config_file: bool,
    probe: &HostProbe,
) -> Result<Times> {
    let mut vm = Vm::boot(
        &format!("boot {n}"),
        opts,
        &out.join(format!("console-{n}.log")),
    )?;
    let shell = vm.wait_for_shell(Duration::from_secs(240))?;
    let t = Duration::from_secs(30);

    let has_config = vm.run("[ -f /config/device.yaml ]", t)?.0 == 0;
    if has_config != expect_config_file {
        bail!(
            "boot {n}: /config/device.yaml present = {has_config}, expected {expect_config_file}"
        );
    }
    vm.ok("grep -q ' /persist ext4 ' /proc/mounts", t)
        .context("/persist is not the ext4 partition")?;

    // The agent: its admin socket (rcS records when it appeared).
    vm.ok("i=0; until grep -q outpostd-ready /run/outpost-init/boot-times; do i=$((i+1)); [ $i -gt 1200 ] && exit 1; sleep 0.1; done", Duration::from_secs(150))
        .context("outpostd did not start (logread -source outpostd)")?;
    let times = vm.ok("cat /run/outpost-init/boot-times", t)?;
    let stamp = |what: &str| -> f64 {
        times
            .lines()
            .find(|l| l.ends_with(what))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    ctl.after_agent_started(&mut vm)?;

    // The app, as the operator sees it.
    let running = vm.run(
        // Each `outpost list` is bounded, and a device that never gets there
        // leaves the agent's last lines on the console for the report.
        "i=0; until timeout 3 outpost list 2>/dev/null | grep -q '^hello .*RUNNING'; do i=$((i+1)); [ $i -gt 120 ] && { logread -source outpostd | tail -40; ps; cat /proc/loadavg; break; }; sleep 0.5; done; cut -d' ' -f1 /proc/uptime",
        Duration::from_secs(200),
    )?;
    let running_host = secs(vm.started.elapsed());
    let list = vm.ok("outpost list", t)?;
    println!("boot {n}: outpost list:\n{list}");
    if !list
        .lines()
        .any(|l| l.starts_with("hello ") && l.contains("RUNNING") && l.contains(HELLO_UUID))
    {
        let logs = vm.run("/usr/bin/logread | tail -40", t)?.1;
        bail!("boot {n}: hello is not RUNNING:\n{list}\nlast log lines:\n{logs}");
    }
    // Its output went to memlogd (task FIFO → memlogd), as `logread` on
    // the console shows it: `<time>;guest_vm-<task>;hello <n>`.
    let logs = vm.ok("sleep 2; logread", t)?;
    let hello_lines = logs.lines().filter(|l| is_hello_output(l)).count();
    if hello_lines == 0 {
        bail!("boot {n}: no `hello <n>` lines from the app in logread:\n{logs}");
    }
    println!("boot {n}: logread has {hello_lines} lines of hello's output");
    // memlogd stamps lines with the wall clock; rcS stamped memlogd's start
    // with the uptime: together they place the app's first line on the uptime scale.
    let wall = |pred: &dyn Fn(&str) -> bool| {
        logs.lines()
            .find(|l| pred(l))
            .and_then(|l| clock(l.split(';').next()?))
    };
    let first_output = match (
        wall(&|l: &str| l.contains(";memlogd;")),
        wall(&is_hello_output),
    ) {
        (Some(m), Some(h)) => stamp("memlogd") + (h - m).rem_euclid(86_400.0),
        _ => f64::NAN,
    };
    if n > 1 {
        vm.ok(
            "/usr/bin/logread -source outpostd | grep -q 'starting from the checkpoint'",
            t,
        )
        .context("the agent did not start from its checkpoint")?;
        // The previous power-off unmounted /persist: no journal replay.
        let replay = vm.run("dmesg | grep 'EXT4-fs (vda3)' | grep -i recover", t)?;
        if replay.0 == 0 {
            bail!("boot {n}: /persist needed journal recovery, so the last shutdown was not clean:\n{}", replay.1);
        }
    }
    let services = vm.ok("ctr -n services.linuxkit tasks ls", t)?;
    if !services
        .lines()
        .any(|l| l.starts_with("dhcpcd") && l.contains("RUNNING"))
    {
        bail!("boot {n}: the dhcpcd service is not running in services.linuxkit:\n{services}");
    }
    vm.ok("ip -4 addr show eth0 | grep -q 'inet 10.0.2.15/'", t)
        .context("eth0 has no DHCP address")?;
    // The guest reaches the host only through its forwards (restrict=on).
    let (ip, port) = PROBE_GUEST;
    let reply = vm.ok(&format!("echo hi | nc -w 5 {ip} {port}"), t)?;
    if reply.trim() != PROBE_REPLY {
        bail!("boot {n}: the forwarded host service answered {reply:?}");
    }
    let direct = vm.run(&format!("echo hi | nc -w 3 10.0.2.2 {}", probe.port), t)?;
    if direct.1.contains(PROBE_REPLY) {
        bail!("boot {n}: the guest reached the host directly at 10.0.2.2:{}; networking is not restricted", probe.port);
    }

    if n == 1 {
        service_restarted(&mut vm, t)?;
    }

    let accel = vm.accel;
    let off = vm.poweroff(Duration::from_secs(90))?;
    println!("boot {n}: powered off in {:.1} s", secs(off));
    Ok(Times {
        accel,
        shell: secs(shell),
        agent_guest: stamp("outpostd-ready"),
        running_guest: running
            .1
            .trim()
            .lines()
            .last()
            .and_then(|l| l.parse().ok())
            .unwrap_or(f64::NAN),
        running_host,
        first_output,
    })
}

/// `outpost svc list` shows the image's dhcpcd service as declared and
/// running, and the agent restarts it after a SIGKILL.
fn service_restarted(vm: &mut Vm, t: Duration) -> Result<()> {
    let list = vm.ok("outpost svc list", t)?;
    println!("outpost svc list:\n{list}");
    let row = list
        .lines()
        .find(|l| l.starts_with("dhcpcd "))
        .with_context(|| format!("outpost svc list has no dhcpcd:\n{list}"))?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    if cols.get(1) != Some(&"RUNNING") || cols.last() != Some(&"yes") {
        bail!("dhcpcd is not a running declared service: {row}");
    }
    let pid = cols[2];
    vm.ok(&format!("kill -9 {pid}"), t)?;
    vm.ok(
        "i=0; until outpost svc list | grep -q '^dhcpcd  *RUNNING .* 1 .* yes$'; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.2; done",
        t,
    )
    .with_context(|| format!("the agent did not restart dhcpcd (pid {pid} killed)"))?;
    let after = vm.ok("outpost svc status dhcpcd", t)?;
    println!("after SIGKILL to dhcpcd:\n{after}");
    vm.ok("outpost check | grep -q '^ok   services'", t)
        .context("outpost check: services")?;
    Ok(())
}

/// A logread line of hello's stdout.
fn is_hello_output(l: &str) -> bool {
    let mut f = l.splitn(3, ';');
    let (_, src, msg) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
    src.starts_with("guest_vm-")
        && msg.starts_with("hello ")
        && msg[6..].chars().all(|c| c.is_ascii_digit())
}

/// Seconds since midnight of an RFC 3339 time (`2026-11-25T13:06:07.43Z`).
fn clock(ts: &str) -> Option<f64> {
    let t = ts.split_once('T')?.1.trim_end_matches('Z');
    let mut p = t.split(':');
    let (h, m, s): (f64, f64, f64) = (
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

#[test]
#[ignore = "needs the workspace binaries and QEMU: make image-test"]
fn image_boots_restores_from_its_checkpoint_and_onboards() -> Result<()> {
    let all = Instant::now();
    let release = bin_dir()?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = release.parent().context("target dir")?.join("image-test");
    std::fs::create_dir_all(&out)?;
    let mut ctl = NoController;

    let config = tempfile::tempdir()?;
    std::fs::write(config.path().join("device.yaml"), DEVICE_YAML)?;
    ctl.config(1, config.path())?;

    let t0 = Instant::now();
    let report = build(&BuildOptions {
        definition: workspace.join("linuxkit/outpost.yml"),
        out: out.clone(),
        config_dir: Some(config.path().to_owned()),
        release_dir: release.clone(),
        sizes: DiskSizes::default(),
    })?;
    println!("{report}");
    let build_time = secs(t0.elapsed());

    let mut opts = QemuOptions::for_image(&out);
    let probe = HostProbe::start()?;
    opts.forwards = ctl.forwards();
    opts.forwards.push(probe.forward());
    let first = boot_and_check(1, &opts, &out, &mut ctl, true, &probe)?;

    // Second boot: no config file, so the only source is the checkpoint.
    let second_config = tempfile::tempdir()?;
    ctl.config(2, second_config.path())?;
    disk::replace_config(&opts.disk, Some(second_config.path()))?;
    let second = boot_and_check(2, &opts, &out, &mut ctl, false, &probe)?;

    // Third boot: onboarding to the reference controller.
    let controller_bin = release.join("outpost-controller");
    let (third, fourth) = {
        let mut ctl = ControllerProcess::start(&controller_bin, &out.join("controller"))?;
        let third_config = tempfile::tempdir()?;
        ctl.config(3, third_config.path())?;
        disk::replace_config(&opts.disk, Some(third_config.path()))?;
        let mut opts3 = opts.clone();
        opts3.forwards = ctl.forwards();
        opts3.forwards.push(probe.forward());
        let third = boot_and_check(3, &opts3, &out, &mut ctl, false, &probe)?;
        // Fourth boot: the controller is gone; the pushed config comes back
        // from the checkpoint.
        drop(ctl);
        let mut gone = ControllerGone;
        let mut opts4 = opts.clone();
        opts4.forwards = vec![probe.forward()];
        let fourth = boot_and_check(4, &opts4, &out, &mut gone, false, &probe)?;
        (third, fourth)
    };

    println!(
        "image build: {build_time:.1} s; build and four boots: {:.1} s",
        secs(all.elapsed())
    );
    for (n, t) in [(1, &first), (2, &second), (3, &third), (4, &fourth)] {
        println!(
            "boot {n} ({}): guest uptime: agent answering {:.1} s, app's first output {:.1} s, `outpost list` RUNNING {:.1} s; \
             host: shell {:.1} s, RUNNING seen {:.1} s after QEMU start",
            t.accel, t.agent_guest, t.first_output, t.running_guest, t.shell, t.running_host
        );
    }
    Ok(())
}
