//! Runs the images under `images/` the way a runtime would, without one: the
//! layers are unpacked into a rootfs and the image config's command runs as
//! PID 1 of a new PID namespace (`unshare --pid --fork`, `chroot`). This
//! checks the behaviour the agent's tests rely on — output, exit codes and,
//! above all, signal handling as PID 1.
//!
//! Needs root, `unshare` and `chroot`; each test prints why and passes when
//! they are missing.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outpost_ocibuild::{build, ImageDef, OciLayout};

fn tool(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap_or(false)
}

/// The tools. A missing prerequisite fails the test (`make test` runs as
/// root on a machine with util-linux and coreutils): a test that cannot run
/// its subject must not pass.
fn prerequisites() -> (PathBuf, PathBuf) {
    assert!(
        is_root(),
        "needs root (chroot, PID namespace): run the tests as root, as make test does"
    );
    let unshare = tool(&["/usr/bin/unshare", "/bin/unshare"]);
    let chroot = tool(&["/usr/sbin/chroot", "/usr/bin/chroot"]);
    match (unshare, chroot) {
        (Some(u), Some(c)) => (u, c),
        _ => panic!("needs unshare and chroot (apt-get install util-linux coreutils)"),
    }
}

/// A running image: PID 1 of its own PID namespace, output collected.
struct Running {
    unshare: Child,
    init_pid: u32,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut s = b.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    buf
}

fn start(image: &str, extra_env: &[(&str, &str)]) -> Running {
    let (unshare, chroot) = prerequisites();
    let dir = tempfile::tempdir().unwrap();
    let src = common::images_dir().join(image);
    let def = ImageDef::load(src.join("image.yaml")).unwrap();
    let built = build(&def, &src, &dir.path().join("layout")).unwrap();
    let layout = OciLayout::open(&built.layout_dir).unwrap();
    let root = dir.path().join("rootfs");
    common::unpack_rootfs(&layout, &root);
    // A runtime mounts /dev; the scripts need /dev/null for background jobs.
    let mknod = Command::new("/bin/busybox")
        .args(["mknod", "-m", "666"])
        .arg(root.join("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(mknod.success());

    let config = layout.config().unwrap().value;
    let rc = config.config().clone().unwrap();
    let mut args: Vec<String> = rc.entrypoint().clone().unwrap_or_default();
    args.extend(rc.cmd().clone().unwrap_or_default());
    let env = rc.env().clone().unwrap_or_default();

    let mut cmd = Command::new(unshare);
    cmd.args(["--pid", "--fork", "--kill-child"])
        .arg(chroot)
        .arg(&root)
        .args(&args)
        .env_clear()
        .envs(env.iter().filter_map(|e| e.split_once('=')))
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());

    // unshare --fork: the namespace's PID 1 is unshare's only child.
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let init_pid = loop {
        let s = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(pid) = s.split_whitespace().next() {
            break pid.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "no PID 1 appeared for {image}");
        std::thread::sleep(Duration::from_millis(10));
    };
    Running {
        unshare: child,
        init_pid,
        stdout,
        stderr,
        _dir: dir,
    }
}

impl Running {
    fn signal(&self, sig: &str) {
        let st = Command::new("/bin/busybox")
            .args(["kill", &format!("-{sig}"), &self.init_pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.init_pid);
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `pred(stdout, stderr)` holds; panics with the output after
    /// `timeout`.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.stdout(), &self.stderr()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit, at most `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.unshare.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(50));
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.unshare.try_wait().ok().flatten().is_none() {
            let _ = Command::new("/bin/busybox")
                .args(["kill", "-KILL", &self.init_pid.to_string()])
                .status();
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}

fn hello_like(image: &str) {
    let mut r = start(image, &[]);
    r.wait_for(
        "hello-err 5 on stderr",
        Duration::from_secs(10),
        |_, err| err.contains("hello-err 5\n"),
    );
    let out = r.stdout();
    let expected: String = (1..=5).map(|n| format!("hello {n}\n")).collect();
    assert!(out.starts_with(&expected), "stdout:\n{out}");
    assert!(!out.contains("hello-err"), "stderr lines on stdout:\n{out}");

    // Right after a line the loop has just started its 1 s sleep: a trap that
    // waited for the sleep would take ~1 s.
    let n = out.lines().count();
    r.wait_for("next line", Duration::from_secs(3), |o, _| {
        o.lines().count() > n
    });
    let t = Instant::now();
    r.signal("TERM");
    let st = r
        .wait_exit(Duration::from_secs(3))
        .expect("exit after SIGTERM");
    let took = t.elapsed();
    assert_eq!(st.code(), Some(0), "stdout:\n{}", r.stdout());
    assert!(r.stdout().ends_with("bye\n"), "stdout:\n{}", r.stdout());
    assert!(
        took < Duration::from_millis(700),
        "SIGTERM took {took:?}: the trap must fire during `wait`"
    );
}

#[test]
fn hello_prints_and_exits_promptly_on_sigterm() {
    hello_like("hello");
}

#[test]
fn vnc_labelled_behaves_like_hello() {
    hello_like("vnc-labelled");
}

#[test]
fn crash_exits_with_the_configured_code() {
    let mut r = start("crash", &[("CRASH_CODE", "7"), ("CRASH_AFTER", "1")]);
    let st = r.wait_exit(Duration::from_secs(5)).expect("crash exits");
    assert_eq!(st.code(), Some(7));
    assert!(
        r.stdout().contains("exit with code 7 in 1s"),
        "{}",
        r.stdout()
    );
}

#[test]
fn crash_defaults_to_code_3_after_2_seconds() {
    let t = Instant::now();
    let mut r = start("crash", &[]);
    let st = r.wait_exit(Duration::from_secs(6)).expect("crash exits");
    assert_eq!(st.code(), Some(3));
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn stubborn_ignores_sigterm_until_killed() {
    let mut r = start("stubborn", &[]);
    r.wait_for("start line", Duration::from_secs(5), |o, _| {
        o.contains("started")
    });
    r.signal("TERM");
    r.wait_for("ignoring TERM", Duration::from_secs(3), |o, _| {
        o.contains("ignoring TERM")
    });
    assert!(
        r.wait_exit(Duration::from_millis(1500)).is_none(),
        "stubborn exited on SIGTERM"
    );
    r.signal("KILL");
    r.wait_exit(Duration::from_secs(3))
        .expect("exit after SIGKILL");
}

#[test]
fn sh_sleeps_and_stops_on_sigterm() {
    let mut r = start("sh", &[]);
    assert!(
        r.wait_exit(Duration::from_millis(500)).is_none(),
        "sh image should keep running"
    );
    r.signal("TERM");
    let st = r
        .wait_exit(Duration::from_secs(2))
        .expect("exit after SIGTERM");
    assert_eq!(st.code(), Some(0));
}

#[test]
fn images_carry_their_behaviour_in_the_config_not_the_host() {
    // Guard against the run tests passing because of the host: the command
    // must be an absolute path inside the image.
    for image in ["hello", "crash", "stubborn", "sh", "vnc-labelled"] {
        let def = ImageDef::load(common::images_dir().join(image).join("image.yaml")).unwrap();
        let cmd = def.config.cmd.clone().unwrap();
        assert!(Path::new(&cmd[0]).is_absolute(), "{image}: {cmd:?}");
    }
}
