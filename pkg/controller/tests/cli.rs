//! The real binary: init, serve (stdout line, SIGTERM), the admin CLI over
//! its unix socket, and sign-bootstrap.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{client, log_batch};
use outpost_api::cloud::{
    BootstrapConfig, LogEntry, RegisterRequest, RegisterResponse, SignedEnvelope, BATCH_HEADER,
};
use outpost_controller::admin::types::{DeviceStatus, DeviceView};
use outpost_controller::StateDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_outpost-controller");

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn ctl(state: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .await
        .unwrap();
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn serve(state: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .env("OUTPOST_CONTROLLER_STATE", state)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("serve printed its address")
        .unwrap()
        .unwrap();
    let addr = line
        .strip_prefix("listening on https://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_serve_and_operate_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bundle = dir.path().join("bundle");
    let s = state.to_str().unwrap();

    // init: state files, modes, bundle
    let out = ctl(
        &state,
        &[
            "init",
            "--server",
            "127.0.0.1:9443",
            "--name",
            "ctl.test",
            "--out",
            bundle.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    for key in [
        "ca.key.pem",
        "server.key.pem",
        "signing.key.pem",
        "onboard.key.pem",
    ] {
        assert_eq!(mode(&state.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&state), 0o700);
    assert_eq!(
        std::fs::read_to_string(bundle.join("server")).unwrap(),
        "127.0.0.1:9443\n"
    );
    assert_eq!(
        std::fs::read(bundle.join("root-certificate.pem")).unwrap(),
        std::fs::read(state.join("ca.cert.pem")).unwrap()
    );
    assert_eq!(mode(&bundle.join("onboard.key.pem")), 0o600);
    // no overwrite without --force
    let again = ctl(&state, &["init", "--server", "127.0.0.1:9443"]).await;
    assert!(!again.ok);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    // the admin commands need a running server, and say so
    let down = ctl(&state, &["device", "list"]).await;
    assert!(!down.ok);
    assert!(down.stderr.contains("serve"), "{}", down.stderr);

    let (mut server, addr) = serve(&state).await;
    let ca = std::fs::read_to_string(bundle.join("root-certificate.pem")).unwrap();
    let url = |p: &str| format!("https://{addr}/api/v1{p}");

    // device add, duplicate name refused
    let out = ctl(&state, &["device", "add", "gw-1", "--serial", "SN-1"]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = ctl(&state, &["device", "add", "gw-1", "--serial", "SN-2"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("exists"), "{}", out.stderr);

    // the device registers with the bundle's onboarding identity
    let onboarding = client(
        &ca,
        Some((
            &std::fs::read_to_string(bundle.join("onboard.cert.pem")).unwrap(),
            &std::fs::read_to_string(bundle.join("onboard.key.pem")).unwrap(),
        )),
    );
    let key = rcgen::KeyPair::generate().unwrap();
    let r = onboarding
        .post(url("/register"))
        .json(&RegisterRequest {
            serial: "SN-1".into(),
            csr_pem: common::csr(&key),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reg: RegisterResponse = r.json().await.unwrap();
    let device = client(&ca, Some((&reg.cert_pem, &key.serialize_pem())));

    // set-config prints the generation; a bad file names the problem
    let doc = dir.path().join("doc.yaml");
    std::fs::write(&doc, common::doc(2)).unwrap();
    let out = ctl(
        &state,
        &["device", "set-config", "gw-1", doc.to_str().unwrap()],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("generation 1"), "{}", out.stdout);
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apps: {}\n").unwrap();
    let out = ctl(
        &state,
        &["device", "set-config", &reg.uuid, bad.to_str().unwrap()],
    )
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("apps") && out.stderr.contains("nothing changed"),
        "{}",
        out.stderr
    );
    // unknown names get suggestions
    let out = ctl(&state, &["device", "status", "gw1"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("did you mean: gw-1"), "{}", out.stderr);

    // the device fetches and verifies it
    let r = device
        .get(url(&format!("/devices/{}/config", reg.uuid)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let payload = common::verify(
        &StateDir::new(&state),
        &r.json::<SignedEnvelope>().await.unwrap(),
    );
    assert_eq!(payload.generation, 1);

    // uploads show up in list / status / logs / metrics
    let info = serde_json::json!({
        "agent_version": "0.1.0", "hostname": "gw-1", "kernel": "6.1",
        "agent_uptime_secs": 30, "reported_at": "2025-01-01T00:00:00Z",
        "config_generation": 1, "config_origin": "controller", "apps": []
    });
    let r = device
        .post(url(&format!("/devices/{}/info", reg.uuid)))
        .json(&info)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let app = "6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a00";
    let line = |i: usize, app: Option<&str>| LogEntry {
        time: format!("2025-01-01T00:00:0{i}Z"),
        source: "outpostd".into(),
        app: app.map(str::to_owned),
        msg: format!("hello {i}"),
    };
    let r = device
        .post(url(&format!("/devices/{}/logs", reg.uuid)))
        .header(BATCH_HEADER, "1")
        .body(log_batch(&[
            line(1, Some(app)),
            line(2, None),
            line(3, Some(app)),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let out = ctl(&state, &["device", "list", "--json"]).await;
    assert!(out.ok, "{}", out.stderr);
    let list: Vec<DeviceView> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].config_set, list[0].config_applied),
        (Some(1), Some(1))
    );
    assert!(list[0].registered && list[0].last_seen.is_some());
    let out = ctl(&state, &["device", "list"]).await;
    assert!(
        out.stdout.contains("gw-1") && out.stdout.contains("1/1"),
        "{}",
        out.stdout
    );
    let out = ctl(&state, &["device", "status", "gw-1", "--json"]).await;
    let st: DeviceStatus = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(st.log_lines, 3);
    assert_eq!(st.info.unwrap().info.hostname, "gw-1");

    // logs by app name (from the config), last N
    let out = ctl(&state, &["device", "logs", "gw-1", "app0"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert!(out.stdout.contains("app0 hello 3"), "{}", out.stdout);
    let out = ctl(&state, &["device", "logs", "gw-1", "-n", "1"]).await;
    assert_eq!(out.stdout.trim(), "2025-01-01T00:00:03Z app0 hello 3");
    let out = ctl(&state, &["device", "logs", "gw-1", "nosuchapp"]).await;
    assert!(!out.ok);

    // logs -f prints lines as they arrive
    let mut follow = Command::new(BIN)
        .args(["--state", s, "device", "logs", "gw-1", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut followed = BufReader::new(follow.stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = device
        .post(url(&format!("/devices/{}/logs", reg.uuid)))
        .header(BATCH_HEADER, "2")
        .body(log_batch(&[line(4, None)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let next = tokio::time::timeout(Duration::from_secs(5), followed.next_line())
        .await
        .expect("followed line")
        .unwrap()
        .unwrap();
    assert!(next.ends_with("outpostd hello 4"), "{next}");
    follow.kill().await.unwrap();

    let metrics = serde_json::json!({
        "at": "2025-01-01T00:00:00Z",
        "device": {"mem_total_bytes": 1073741824u64, "mem_available_bytes": 536870912u64,
                   "cpu_busy_ns": 1, "cpus": 2, "uptime_secs": 60, "agent_rss_bytes": 1048576},
        "apps": []
    });
    let r = device
        .post(url(&format!("/devices/{}/metrics", reg.uuid)))
        .json(&metrics)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let out = ctl(&state, &["device", "metrics", "gw-1"]).await;
    assert!(
        out.ok && out.stdout.contains("512.0 MiB used of 1.0 GiB"),
        "{}{}",
        out.stdout,
        out.stderr
    );

    // set-config --all: every device, each its next generation, one transaction
    let out = ctl(&state, &["device", "add", "gw-2", "--serial", "SN-2"]).await;
    assert!(out.ok, "{}", out.stderr);
    let out = ctl(
        &state,
        &["device", "set-config", "--all", doc.to_str().unwrap()],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("gw-1") && out.stdout.contains("generation 2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("gw-2") && out.stdout.contains("generation 1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("config set on 2 devices"),
        "{}",
        out.stdout
    );
    let r = device
        .get(url(&format!("/devices/{}/config", reg.uuid)))
        .header("if-none-match", format!("\"{}\"", "0"))
        .send()
        .await
        .unwrap();
    let payload = common::verify(
        &StateDir::new(&state),
        &r.json::<SignedEnvelope>().await.unwrap(),
    );
    assert_eq!(
        (payload.device.as_deref(), payload.generation),
        (Some(reg.uuid.as_str()), 2)
    );
    let out = ctl(&state, &["device", "set-config", "gw-1"]).await;
    assert!(!out.ok);

    // stats
    let out = ctl(&state, &["stats", "--json"]).await;
    assert!(
        out.ok && out.stdout.contains("connections_refused"),
        "{}",
        out.stderr
    );

    // sign-bootstrap works offline, even while serving
    let boot = dir.path().join("bootstrap-config.json");
    let out = ctl(
        &state,
        &[
            "sign-bootstrap",
            doc.to_str().unwrap(),
            "-o",
            boot.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    let boot: BootstrapConfig = serde_json::from_slice(&std::fs::read(&boot).unwrap()).unwrap();
    assert_eq!(
        boot.signing_cert_pem,
        std::fs::read_to_string(state.join("signing.cert.pem")).unwrap()
    );
    let payload = common::verify(&StateDir::new(&state), &boot.config);
    assert_eq!((payload.device, payload.generation), (None, 0));

    // delete: the certificate stops working
    let out = ctl(&state, &["device", "delete", "gw-1"]).await;
    assert!(out.ok, "{}", out.stderr);
    let r = device
        .get(url(&format!("/devices/{}/config", reg.uuid)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // SIGTERM: clean exit, socket removed
    let pid = nix::unistd::Pid::from_raw(server.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), server.wait())
        .await
        .expect("exited")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!state.join("admin.sock").exists());

    // --force replaces the state
    let out = ctl(&state, &["init", "--server", "127.0.0.1:9443", "--force"]).await;
    assert!(out.ok, "{}", out.stderr);
}
