//! Device services in a real system containerd (`services.linuxkit`, the
//! one `scripts/test-daemons.sh` starts, or a private one) beside the
//! agent's real user containerd: `outpost svc …`, the supervisor's restart
//! with backoff, and that undeclared services and same-named apps are left
//! alone. Services are made as rcS makes them: `ctr run -d --config
//! bundle/config.json --log-uri binary://…` with a logger that writes into
//! memlogd under logwrite's names.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use outpost_api::{ServiceStatus, SwState};
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::{Layout, SYSTEM_NAMESPACE};
use outpost_tests::agent::{app_yaml, tail, AgentEnv};
use outpost_tests::{require_root, workspace_bin};

const T: Duration = Duration::from_secs(40);

/// A system containerd: CI's when `OUTPOST_TEST_SYSTEM_SOCKET` is set,
/// otherwise a private one (killed on drop).
struct System {
    socket: PathBuf,
    own: Option<UserInstance>,
    /// Services this test made (removed on drop, also after a failure).
    made: std::sync::Mutex<Vec<String>>,
    _dir: tempfile::TempDir,
}

impl System {
    async fn get() -> System {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("outpost-svcsys")
            .tempdir_in("/tmp")
            .unwrap();
        if let Some(s) = std::env::var_os("OUTPOST_TEST_SYSTEM_SOCKET") {
            return System {
                socket: s.into(),
                own: None,
                made: Default::default(),
                _dir: dir,
            };
        }
        let sys = Layout::new(dir.path());
        let (i, _) = UserInstance::start(
            &sys,
            InstanceOptions::with_log_file(dir.path().join("containerd.log")),
        )
        .await
        .unwrap();
        System {
            socket: i.socket().to_path_buf(),
            own: Some(i),
            made: Default::default(),
            _dir: dir,
        }
    }

    fn ctr(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", SYSTEM_NAMESPACE])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Creates and starts service `name` running `script`, as rcS does.
    fn start_service(&self, dir: &Path, name: &str, memlogd_log: &Path, script: &str) {
        self.start_service_with(dir, name, memlogd_log, script, true)
    }

    /// `log_uri: false`: plain `ctr run -d` (output to FIFOs ctr reads
    /// until it exits), a service without a log set-up of its own.
    fn start_service_with(
        &self,
        dir: &Path,
        name: &str,
        memlogd_log: &Path,
        script: &str,
        log_uri: bool,
    ) {
        let bundle = dir.join(format!("bundle-{name}"));
        let rootfs = bundle.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        for a in ["sh", "echo", "sleep", "cat", "ls", "hostname"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let out = Command::new("runc")
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(out.status.success(), "runc spec: {out:?}");
        let path = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        spec["root"] = serde_json::json!({"path": rootfs, "readonly": false});
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
        spec["process"]["env"] = serde_json::json!(["PATH=/bin"]);
        spec["hostname"] = name.into();
        std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
        // rcS's svclog, pointed at this test's memlogd.
        let logger = dir.join("svclog");
        if !logger.exists() {
            let text = format!(
                "#!/bin/sh\nexec 5>&-\nexec {} -socket {} -n \"${{CONTAINER_ID:-service}}\" sh -c 'cat <&3 & exec cat <&4 >&2' </dev/null >/dev/null 2>&1\n",
                workspace_bin("logwrite").display(),
                memlogd_log.display()
            );
            std::fs::write(&logger, text).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let uri = format!("binary://{}", logger.display());
        let mut args = vec!["run", "-d", "--config", path.to_str().unwrap()];
        if log_uri {
            args.extend(["--log-uri", &uri]);
        }
        args.push(name);
        let (ok, out) = self.ctr(&args);
        assert!(ok, "ctr run {name}: {out}");
        self.made.lock().unwrap().push(name.to_owned());
    }

    fn remove_service(&self, name: &str) {
        let _ = self.ctr(&["tasks", "kill", "-a", "-s", "SIGKILL", name]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ctr(&["tasks", "rm", "-f", name]).0 && Instant::now() < deadline {
            if self
                .ctr(&["tasks", "ls", "-q"])
                .1
                .lines()
                .all(|l| l != name)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.ctr(&["containers", "rm", name]);
    }

    /// `ctr tasks ls` rows whose task starts with `prefix`: (name, pid, status).
    fn tasks(&self, prefix: &str) -> Vec<(String, u32, String)> {
        let (ok, out) = self.ctr(&["tasks", "ls"]);
        assert!(ok, "ctr tasks ls: {out}");
        let mut rows: Vec<_> = out
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && f[0].starts_with(prefix))
                    .then(|| (f[0].to_owned(), f[1].parse().unwrap_or(0), f[2].to_owned()))
            })
            .collect();
        rows.sort();
        rows
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for n in std::mem::take(&mut *self.made.lock().unwrap()) {
            self.remove_service(&n);
        }
        // A private daemon (no runtime here to await its kill): by PID.
        if let Some(pid) = self.own.take().and_then(|i| i.pid()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The agent, told where the system containerd and the manifest are.
fn agent(sys: &System, declared: &[&str], extra: &[&str]) -> AgentEnv {
    with_system(AgentEnv::new(), sys, declared, extra)
}

/// `env`'s agent, also told where the system containerd and the manifest are.
fn with_system(mut env: AgentEnv, sys: &System, declared: &[&str], extra: &[&str]) -> AgentEnv {
    let manifest = env.layout.root().join("etc/services.json");
    std::fs::write(&manifest, serde_json::to_vec(declared).unwrap()).unwrap();
    env.flags.extend(
        [
            "--system-socket",
            sys.socket.to_str().unwrap(),
            "--services-manifest",
            manifest.to_str().unwrap(),
            // Exits and starts must be seen through the task events: the
            // periodic observation is out of reach of every test's deadline.
            "--service-poll-ms",
            "600000",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string()),
    );
    env
}

fn svc_list(env: &AgentEnv) -> Vec<ServiceStatus> {
    let (code, out, err) = env.outpost(&["svc", "list", "--json"]);
    assert_eq!(code, 0, "svc list: {err}");
    serde_json::from_str(&out).unwrap()
}

fn svc(env: &AgentEnv, name: &str) -> Option<ServiceStatus> {
    let (code, out, _) = env.outpost(&["svc", "status", name, "--json"]);
    (code == 0).then(|| serde_json::from_str(&out).unwrap())
}

/// Polls `svc status NAME` until `f` holds.
fn wait_svc(
    env: &AgentEnv,
    name: &str,
    what: &str,
    f: impl Fn(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let deadline = Instant::now() + T;
    loop {
        let s = svc(env, name);
        if let Some(s) = s.as_ref().filter(|s| f(s)) {
            return s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}; last {s:?}\nagent log:\n{}",
            tail(&env.agent_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn salt() -> String {
    format!("{:06x}", rand_u24())
}

fn rand_u24() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() ^ std::process::id()) & 0xff_ffff
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_listed_exec_logs_enter_and_apps_never_collide() {
    let sys = System::get().await;
    let s = salt();
    let (web, db) = (format!("t{s}-web"), format!("t{s}-db"));
    let mut env = agent(&sys, &[&web, &db], &[]);
    let log = env.layout.memlogd_log_socket();
    let dir = env.dir.path().to_path_buf();
    sys.start_service(
        &dir,
        &web,
        &log,
        "echo web-out-line; echo web-err-line >&2; exec sleep 100000",
    );
    sys.start_service(&dir, &db, &log, "echo db up; exec sleep 100000");
    // An app with the same name as a service, in the user containerd.
    env.write_config(&format!(
        "generation: 1\napps:\n{}",
        app_yaml(&env.uuid(1), &web, 1, "hello", "")
    ));
    env.start_agent();
    env.wait_running(&[&web], T);
    for n in [&web, &db] {
        wait_svc(&env, n, "RUNNING", |s| {
            s.is_running() && s.pid > 0 && s.declared
        });
    }

    // `ctr tasks ls` agrees with `outpost svc list --json`.
    let deadline = Instant::now() + T;
    loop {
        let ctr = sys.tasks(&format!("t{s}-"));
        let ours: Vec<(String, u32, String)> = svc_list(&env)
            .into_iter()
            .filter(|x| x.name.starts_with(&format!("t{s}-")))
            .map(|x| (x.name, x.pid, x.state))
            .collect();
        if ctr == ours && ctr.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ctr says {ctr:?}, outpost svc list says {ours:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let web_svc = svc(&env, &web).unwrap();
    assert!(web_svc.started_at.is_some(), "uptime known: {web_svc:?}");
    assert!(
        web_svc.memory_bytes.is_some_and(|m| m > 0),
        "metrics read: {web_svc:?}"
    );
    let (code, table, _) = env.outpost(&["svc", "list"]);
    assert_eq!(code, 0);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&web) && l.contains("RUNNING")),
        "{table}"
    );

    // The app and the service keep apart: status, exec, logs.
    let app = env.app(&web).unwrap();
    assert_eq!(app.state, SwState::Running);
    let app_pid = app.domain.as_ref().and_then(|d| d.pid).unwrap();
    assert_ne!(app_pid, web_svc.pid);
    let (code, out, err) = env.outpost(&["svc", "exec", &web, "--", "hostname"]);
    assert_eq!((code, out.trim()), (0, web.as_str()), "svc exec: {err}");
    let (code, out, _) = env.outpost(&["svc", "exec", &web, "--", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "exit status passed through: {out}");
    let (code, out, err) = env.outpost(&["svc", "enter", &web, "--", "hostname"]);
    assert_eq!((code, out.trim()), (0, web.as_str()), "svc enter: {err}");
    let deadline = Instant::now() + T;
    loop {
        let (code, out, _) = env.outpost(&["svc", "logs", &web]);
        assert_eq!(code, 0);
        if out.contains("web-out-line") && out.contains("web-err-line") {
            assert!(!out.contains("hello "), "app output in service logs: {out}");
            break;
        }
        assert!(Instant::now() < deadline, "service logs: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, out, _) = env.outpost(&["logs", &web]);
    assert!(
        !out.contains("web-out-line"),
        "service output in app logs: {out}"
    );

    // Typos get suggestions and exit 1.
    let typo = format!("t{s}-wbe");
    let (code, _, err) = env.outpost(&["svc", "status", &typo]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean") && err.contains(&web), "{err}");

    // `outpost check` has the services check; it passes with all running.
    let (_, out, _) = env.outpost(&["check", "--json"]);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let c = checks.iter().find(|c| c["name"] == "services").unwrap();
    assert_eq!(c["ok"], true, "{c}");

    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_declared_service_is_restarted_with_backoff_and_others_are_left_alone() {
    let sys = System::get().await;
    let s = salt();
    let (keep, foreign) = (format!("u{s}-keep"), format!("u{s}-foreign"));
    let mut env = agent(&sys, &[&keep], &["--service-backoff-initial-ms", "2500"]);
    let log = env.layout.memlogd_log_socket();
    let dir = env.dir.path().to_path_buf();
    sys.start_service(&dir, &keep, &log, "echo keep started; exec sleep 100000");
    sys.start_service(&dir, &foreign, &log, "exec sleep 100000");
    env.start_agent_with(false);
    let first = wait_svc(&env, &keep, "RUNNING", |s| s.is_running());
    let f = wait_svc(&env, &foreign, "RUNNING", |s| s.is_running());
    assert!(!f.declared);

    // Kill both. The declared one backs off, then comes back with a new PID.
    for pid in [first.pid, f.pid] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    }
    let waiting = wait_svc(&env, &keep, "STOPPED, backing off", |s| {
        s.state == "STOPPED" && s.next_restart_ms.is_some()
    });
    assert!(waiting.next_restart_ms.unwrap() <= 2500, "{waiting:?}");
    let second = wait_svc(&env, &keep, "restarted", |s| {
        s.is_running() && s.pid != first.pid && s.restarts == 1
    });
    // Its output still reaches memlogd (the service's own log URI is kept).
    let deadline = Instant::now() + T;
    loop {
        let (_, out, _) = env.outpost(&["svc", "logs", &keep]);
        if out.matches("keep started").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "restarted service logs: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second quick exit waits twice as long.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let waiting = wait_svc(&env, &keep, "STOPPED, backing off longer", |s| {
        s.state == "STOPPED" && s.next_restart_ms.is_some()
    });
    assert!(
        waiting.next_restart_ms.unwrap() > 2500,
        "second delay doubles: {waiting:?}"
    );
    wait_svc(&env, &keep, "restarted again", |s| {
        s.is_running() && s.restarts == 2
    });

    // Meanwhile the undeclared one stayed down and was never counted.
    let f = svc(&env, &foreign).unwrap();
    assert_eq!((f.state.as_str(), f.restarts), ("STOPPED", 0), "{f:?}");
    let (code, _, err) = env.outpost(&["svc", "restart", &foreign]);
    assert_eq!(code, 1);
    assert!(err.contains("not declared"), "{err}");
    let (_, out, _) = env.outpost(&["check", "--json"]);
    let checks: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let c = checks.iter().find(|c| c["name"] == "services").unwrap();
    assert_eq!(
        c["ok"], true,
        "undeclared services do not fail the check: {c}"
    );

    // A declared service without a log URI of its own (plain `ctr run -d`):
    // after a restart its output goes to memlogd under the same names.
    let bare = format!("u{s}-bare");
    let marker = "restarted-and-logging";
    sys.start_service_with(
        &dir,
        &bare,
        &log,
        &format!(
            "if [ -e /tmp/ran ]; then echo {marker}; fi; echo x > /tmp/ran; exec sleep 100000"
        ),
        false,
    );
    let mut declared: Vec<String> = vec![keep.clone(), bare.clone()];
    declared.sort();
    std::fs::write(
        env.layout.root().join("etc/services.json"),
        serde_json::to_vec(&declared).unwrap(),
    )
    .unwrap();
    let b = wait_svc(&env, &bare, "RUNNING, declared", |s| {
        s.is_running() && s.declared
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(b.pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_svc(&env, &bare, "restarted", |s| {
        s.is_running() && s.restarts == 1
    });
    let deadline = Instant::now() + T;
    loop {
        let (_, out, _) = env.outpost(&["svc", "logs", &bare]);
        if out.contains(marker) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "output of a restarted service without a log URI: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // An operator restart of a declared one: new PID, counted.
    let before = svc(&env, &keep).unwrap();
    let (code, out, err) = env.outpost(&["svc", "restart", &keep]);
    assert_eq!(code, 0, "{out}{err}");
    let after = wait_svc(&env, &keep, "restarted by operator", |s| {
        s.is_running() && s.restarts == 3
    });
    assert_ne!(after.pid, before.pid);

    env.teardown().await;
}

#[test]
fn validate_checks_a_config_offline_with_the_agents_errors() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let bad_app = dir.path().join("bad-app.yaml");
    let garbage = dir.path().join("garbage.yaml");
    let uuid = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    std::fs::write(
        &good,
        format!(
            "generation: 3\napps:\n{}",
            app_yaml(uuid, "alpha", 1, "hello", "")
        ),
    )
    .unwrap();
    std::fs::write(
        &bad_app,
        format!(
            "generation: 3\napps:\n{}",
            app_yaml(uuid, "alpha", 1, "hello", "").replace("memory_kib: 32768", "memory_kib: 100")
        ),
    )
    .unwrap();
    std::fs::write(&garbage, "generation: [\n").unwrap();
    let run = |p: &Path| {
        let out = Command::new(workspace_bin("outpost"))
            .arg("validate")
            .arg(p)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&good);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid (generation 3, 1 apps"), "{out}");
    let (code, out, err) = run(&bad_app);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("apps[0].resources.memory_kib"),
        "the validator's path: {err}"
    );
    let (code, _, err) = run(&garbage);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("config from file:{} refused:", garbage.display())),
        "the agent's refusal text: {err}"
    );
    let out = Command::new(workspace_bin("outpost"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("svc"));
}

/// The services reach the controller in the device's info upload, with
/// the state and PID that `outpost svc list` shows on the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_reported_to_the_controller_in_the_device_info() {
    use outpost_tests::controller::{device, Controller};
    let sys = System::get().await;
    let s = salt();
    let (web, gone) = (format!("t{s}-web"), format!("t{s}-gone"));
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (env, serial) = device(&ctl, true);
    // `gone` is declared by the image but never started: reported, not running.
    let mut env = with_system(env, &sys, &[&web, &gone], &[]);
    let log = env.layout.memlogd_log_socket();
    let dir = env.dir.path().to_path_buf();
    sys.start_service(&dir, &web, &log, "exec sleep 100000");
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, T);
    let local = wait_svc(&env, &web, "RUNNING", |x| x.is_running() && x.pid > 0);

    let deadline = Instant::now() + T;
    let reported = loop {
        let st = ctl.status(&dev);
        let services: Vec<ServiceStatus> =
            serde_json::from_value(st["info"]["info"]["services"].clone()).unwrap_or_default();
        let ours: Vec<ServiceStatus> = services
            .into_iter()
            .filter(|x| x.name.starts_with(&format!("t{s}-")))
            .collect();
        if ours.len() == 2 && ours.iter().any(|x| x.name == web && x.is_running()) {
            break ours;
        }
        assert!(
            Instant::now() < deadline,
            "the controller's info never listed both services: {ours:?}\nagent log:\n{}",
            tail(&env.agent_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let w = reported.iter().find(|x| x.name == web).unwrap();
    assert_eq!(w.pid, local.pid, "the same task as on the device");
    assert!(w.declared);
    let g = reported.iter().find(|x| x.name == gone).unwrap();
    assert!(g.declared && !g.is_running(), "{g:?}");
    // the operator's `device status` at the controller names it
    let (rc, out, err) = ctl.cli(&["device", "status", &dev]);
    assert_eq!(rc, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("services"))
        .unwrap_or_else(|| panic!("no services line in device status:\n{out}"));
    assert!(
        line.contains("declared but not running") && line.contains(&gone),
        "{line}"
    );
}
