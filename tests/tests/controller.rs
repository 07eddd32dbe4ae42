//! The controller path end to end: the real `outpost-controller` on a
//! loopback port with real TLS, a real `outpostd` with its own user
//! containerd and memlogd, real containers.
//!
//! Onboarding → config pushed by long-poll → apps RUNNING → change pushed →
//! applied; info, metrics and logs uploaded; offline restart from the
//! checkpoint; log upload exactly once across an agent restart; wrongly
//! signed configs and untrusted controllers refused.

use std::time::{Duration, Instant};

use outpost_api::SwState;
use outpost_cloud::Client;
use outpost_tests::agent::{app_yaml, AgentEnv};
use outpost_tests::controller::{device, Controller};

/// A registered device running `hello` from a config pushed by `ctl`;
/// returns it, its UUID on the controller and hello's YAML entry.
fn device_running_hello(ctl: &Controller) -> (AgentEnv, String, String) {
    let (mut env, serial) = device(ctl, true);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, Duration::from_secs(60));
    let hello = app_yaml(&env.uuid(1), "hello", 1, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}")).0, 0);
    env.wait_running(&["hello"], Duration::from_secs(90));
    (env, dev, hello)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn reported_states(ctl: &Controller, dev: &str) -> Vec<(String, String)> {
    let st = ctl.status(dev);
    st["info"]["info"]["apps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["display_name"].as_str().unwrap_or("").to_owned(),
                        x["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn logs(ctl: &Controller, dev: &str, app: &str) -> String {
    let (code, out, err) = ctl.cli(&["device", "logs", dev, app]);
    assert_eq!(code, 0, "device logs: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboard_push_apply_change_and_report() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (mut env, serial) = device(&ctl, true);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, Duration::from_secs(60));

    // The device identity: key generated on the device, certificate issued
    // by the controller's CA, private.
    let certs = env.layout.persist().join("certs");
    let key_mode = std::fs::metadata(certs.join("device.key.pem"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777,
        0o600
    );

    let hello = app_yaml(&env.uuid(1), "hello", 1, "hello", "");
    let (code, out, err) = ctl.set_config(&dev, &format!("apps:\n{hello}"));
    assert_eq!(code, 0, "set-config: {out}{err}");
    let set_at = Instant::now();
    env.wait_running(&["hello"], Duration::from_secs(90));
    eprintln!("set-config → hello RUNNING in {:?}", set_at.elapsed());

    // A change: a second app and hello's restart counter.
    let hello2 = app_yaml(
        &env.uuid(1),
        "hello",
        1,
        "hello",
        "    restart_counter: 1\n",
    );
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    let before = env.app("hello").unwrap().domain.unwrap().started_at;
    let (code, out, err) = ctl.set_config(&dev, &format!("apps:\n{hello2}{other}"));
    assert_eq!(code, 0, "set-config: {out}{err}");
    let list = env.wait_running(&["hello", "other"], Duration::from_secs(90));
    env.wait_for("hello restarted", Duration::from_secs(60), |l| {
        l.iter().any(|a| {
            a.display_name == "hello"
                && a.state == SwState::Running
                && a.domain.as_ref().map(|d| d.started_at) != Some(before)
        })
    });
    assert_eq!(list.len(), 2);
    let info = env.outpost(&["version"]).1;
    assert!(
        info.contains("config generation 2 from controller"),
        "{info}"
    );
    assert!(info.contains(": connected"), "{info}");

    // The controller hears about it: states, the applied generation, logs, metrics.
    wait_until(
        "both apps reported RUNNING",
        Duration::from_secs(30),
        || {
            let s = reported_states(&ctl, &dev);
            s.len() == 2 && s.iter().all(|(_, st)| st == "RUNNING")
        },
    );
    let st = ctl.status(&dev);
    assert_eq!(st["device"]["config_applied"].as_u64(), Some(2), "{st}");
    assert_eq!(st["device"]["config_set"].as_u64(), Some(2), "{st}");
    wait_until("hello's output uploaded", Duration::from_secs(30), || {
        logs(&ctl, &dev, "hello").contains("hello 2")
    });
    let (code, m, err) = ctl.cli(&["device", "metrics", &dev]);
    assert_eq!(code, 0, "device metrics: {err}");
    assert!(m.contains("hello"), "per-app metrics missing:\n{m}");

    // A document-level error at the controller changes nothing anywhere.
    let (code, _, err) = ctl.set_config(&dev, "apps: [");
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    assert_eq!(ctl.status(&dev)["device"]["config_set"].as_u64(), Some(2));

    // One bad app: reported on that app, the others applied.
    let bad = app_yaml(&env.uuid(3), "tiny", 3, "hello", "    colour: blue\n");
    let (code, out, err) = ctl.set_config(&dev, &format!("apps:\n{hello2}{other}{bad}"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("tiny"),
        "set-config warns about the bad app: {out}{err}"
    );
    env.wait_for("tiny rejected", Duration::from_secs(60), |l| {
        l.iter()
            .any(|a| a.display_name == "tiny" && a.error.is_some())
    });
    env.wait_running(&["hello", "other"], Duration::from_secs(30));

    let (code, out, _) = ctl.set_config(&dev, "apps: []\n");
    assert_eq!(code, 0, "{out}");
    env.wait_for("no apps", Duration::from_secs(60), |l| {
        l.iter().all(|a| a.error.is_some())
    });
    env.teardown().await;
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_restart_runs_the_checkpoint_and_reconnects() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (mut env, dev, _hello) = device_running_hello(&ctl);

    // Controller down; agent killed and its apps gone (as after a reboot).
    ctl.stop();
    env.kill_agent();
    {
        let rt = env.runtime().await;
        for a in rt.list().await.unwrap() {
            rt.remove_container(&a).await.unwrap();
        }
    }
    env.start_agent_with(false);
    let l = env.wait_running(&["hello"], Duration::from_secs(90));
    assert_eq!(l.len(), 1);
    let v = env.outpost(&["version"]).1;
    assert!(v.contains("from checkpoint"), "{v}");
    wait_until(
        "the agent notices the controller is gone",
        Duration::from_secs(30),
        || {
            let v = env.outpost(&["version"]).1;
            v.contains("last error")
        },
    );

    // Controller back: the agent reconnects and reports.
    let reported_before = ctl_reported_at(&ctl, &dev, false);
    ctl.start();
    wait_until(
        "a report after reconnecting",
        Duration::from_secs(30),
        || ctl_reported_at(&ctl, &dev, true) != reported_before,
    );
    wait_until("connected", Duration::from_secs(30), || {
        env.outpost(&["version"]).1.contains(": connected")
    });
    env.teardown().await;
    ctl.stop();
}

fn ctl_reported_at(ctl: &Controller, dev: &str, running: bool) -> Option<String> {
    if !running {
        return Some("before".into());
    }
    ctl.status(dev)["info"]["received_at"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_upload_is_exactly_once_across_agent_restarts() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (mut env, serial) = device(&ctl, true);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, Duration::from_secs(60));
    // hello prints "hello <n>" every second.
    let counter = app_yaml(&env.uuid(1), "counter", 1, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{counter}")).0, 0);
    env.wait_running(&["counter"], Duration::from_secs(90));

    // Kill the agent twice while lines flow, with the controller down once.
    for round in 0..2 {
        std::thread::sleep(Duration::from_secs(2));
        env.kill_agent();
        if round == 1 {
            ctl.stop();
        }
        std::thread::sleep(Duration::from_secs(1));
        env.start_agent_with(false);
        if round == 1 {
            std::thread::sleep(Duration::from_secs(2));
            ctl.start();
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // Stop the app so the count is final, then wait for the queue to drain.
    let (code, _, _) = ctl.set_config(&dev, "apps: []\n");
    assert_eq!(code, 0);
    env.wait_for("app removed", Duration::from_secs(60), |l| l.is_empty());
    wait_until("log queue drained", Duration::from_secs(30), || {
        env.outpost(&["version"])
            .1
            .contains("log upload queue: 0 batches")
    });
    let text = logs(&ctl, &dev, &env.uuid(1));
    let mut seen = std::collections::BTreeMap::<u64, u32>::new();
    for l in text.lines() {
        if let Some(n) = l
            .rsplit_once("hello ")
            .and_then(|(_, r)| r.trim().parse::<u64>().ok())
        {
            *seen.entry(n).or_default() += 1;
        }
    }
    let max = *seen.keys().max().expect("no numbered lines uploaded");
    assert!(max >= 8, "only {max} lines ran");
    let dups: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dups.is_empty(), "lines uploaded twice: {dups:?}");
    let missing: Vec<u64> = (1..=max).filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "lines lost: {missing:?}");
    env.teardown().await;
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_signed_config_is_refused_and_the_current_one_keeps_running() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (env, dev, hello) = device_running_hello(&ctl);

    // The controller now signs with a key whose certificate another CA issued.
    ctl.stop();
    let (cert, key) = foreign_signing_cert();
    std::fs::write(ctl.dir().join("signing.cert.pem"), cert).unwrap();
    std::fs::write(ctl.dir().join("signing.key.pem"), key).unwrap();
    ctl.start();
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}{other}")).0, 0);
    wait_until("the refusal", Duration::from_secs(60), || {
        env.outpost(&["version"]).1.contains("last config refused")
    });
    let v = env.outpost(&["version"]).1;
    assert!(
        v.contains("root CA") || v.contains("signing certificate"),
        "{v}"
    );
    assert!(v.contains("config generation 1 from controller"), "{v}");
    // The agent acted on everything it was given, the refusal included.
    env.wait_settled(0, Duration::from_secs(30));
    let l = env.list();
    assert_eq!(l.len(), 1, "nothing of the refused config applied: {l:?}");
    assert_eq!(l[0].state, SwState::Running);
    wait_until(
        "the controller sees the refusal",
        Duration::from_secs(30),
        || ctl.status(&dev)["device"]["config_error"].is_string(),
    );
    env.teardown().await;
    ctl.stop();
}

fn foreign_signing_cert() -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Issuer::new(p, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let cert = lp.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A certificate for the controller's TLS, signed by its own CA, valid
/// `from`..`to` days from now.
fn server_cert_with_validity(ctl: &Controller, from: i64, to: i64) -> (String, String) {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(ctl.dir().join("ca.key.pem")).unwrap()).unwrap();
    let ca_pem = std::fs::read_to_string(ctl.dir().join("ca.cert.pem")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(from);
    p.not_after = now + time::Duration::days(to);
    let cert = p.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_or_invalid_controller_certificates_are_refused() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let root = std::fs::read(ctl.bundle().join("root-certificate.pem")).unwrap();
    // The right root: fine.
    Client::new(&ctl.addr, &root, None)
        .unwrap()
        .ping()
        .await
        .expect("ping with the right root CA");

    // Another root CA.
    let (other_root, _) = foreign_signing_cert();
    let e = Client::new(&ctl.addr, other_root.as_bytes(), None)
        .unwrap()
        .ping()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
        "{e}"
    );

    // Expired and not-yet-valid server certificates from the right CA.
    for (from, to, want) in [(-30, -1, "certificate expired"), (1, 30, "not valid yet")] {
        ctl.stop();
        let (c, k) = server_cert_with_validity(&ctl, from, to);
        std::fs::write(ctl.dir().join("server.cert.pem"), c).unwrap();
        std::fs::write(ctl.dir().join("server.key.pem"), k).unwrap();
        ctl.start();
        let e = Client::new(&ctl.addr, &root, None)
            .unwrap()
            .ping()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains(want), "{want}: {e}");
    }

    // A device with the wrong root never registers, and says why.
    ctl.stop();
    let (c, k) = server_cert_with_validity(&ctl, -1, 30);
    std::fs::write(ctl.dir().join("server.cert.pem"), c).unwrap();
    std::fs::write(ctl.dir().join("server.key.pem"), k).unwrap();
    ctl.start();
    let (mut env, serial) = device(&ctl, false);
    std::fs::write(
        env.layout.config_dir().join("root-certificate.pem"),
        &other_root,
    )
    .unwrap();
    env.start_agent_with(false);
    wait_until("the onboarding error", Duration::from_secs(30), || {
        let v = env.outpost(&["version"]).1;
        v.contains("onboarding") && (v.contains("UnknownIssuer") || v.contains("invalid peer"))
    });
    assert!(ctl
        .devices()
        .iter()
        .all(|d| d["serial"].as_str() != Some(serial.as_str())));
    env.teardown().await;
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_older_generation_is_refused() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (env, dev, hello) = device_running_hello(&ctl);

    // A backup of the controller taken at generation 1 …
    ctl.stop();
    ctl.backup();
    ctl.start();
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}{other}")).0, 0);
    env.wait_running(&["hello", "other"], Duration::from_secs(90));

    // … restored: the controller now serves the (validly signed) generation 1.
    ctl.stop();
    ctl.restore();
    ctl.start();
    wait_until("the replay refused", Duration::from_secs(60), || {
        env.outpost(&["version"])
            .1
            .contains("older than the applied generation 2")
    });
    env.wait_settled(0, Duration::from_secs(30));
    let l = env.list();
    assert_eq!(l.len(), 2, "the replayed config changed nothing: {l:?}");
    assert!(l.iter().all(|a| a.state == SwState::Running), "{l:?}");
    assert!(env
        .outpost(&["version"])
        .1
        .contains("config generation 2 from controller"));
    env.teardown().await;
    ctl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_boot_offline_runs_the_signed_bootstrap_config() {
    let mut ctl = Controller::init(&[]);
    let (mut env, serial) = device(&ctl, true);
    let hello = app_yaml(&env.uuid(1), "hello", 1, "hello", "");
    let src = ctl.dir().join("bootstrap.yaml");
    std::fs::write(&src, format!("apps:\n{hello}")).unwrap();
    let signed = env.layout.config_dir().join("bootstrap-config.json");
    let (code, out, err) = ctl.cli(&[
        "sign-bootstrap",
        src.to_str().unwrap(),
        "-o",
        signed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "sign-bootstrap: {out}{err}");

    // A tampered copy is refused, and nothing runs.
    let good = std::fs::read_to_string(&signed).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let payload = v["config"]["payload"].as_str().unwrap().to_owned();
    let mut bytes = base64_decode(&payload);
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    v["config"]["payload"] = base64_encode(&bytes).into();
    std::fs::write(&signed, v.to_string()).unwrap();
    env.start_agent_with(false);
    wait_until(
        "the tampered bootstrap refused",
        Duration::from_secs(30),
        || env.outpost(&["version"]).1.contains("bootstrap config"),
    );
    assert!(env.list().is_empty());
    env.kill_agent();

    // The real one runs with the controller unreachable (never started).
    std::fs::write(&signed, &good).unwrap();
    env.start_agent_with(false);
    env.wait_running(&["hello"], Duration::from_secs(90));
    assert!(env.outpost(&["version"]).1.contains("from bootstrap"));

    // The controller's first config replaces it.
    ctl.start();
    let dev = ctl.wait_device(&serial, Duration::from_secs(60));
    let other = app_yaml(&env.uuid(2), "other", 2, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{other}")).0, 0);
    env.wait_for("only other", Duration::from_secs(90), |l| {
        l.len() == 1 && l[0].display_name == "other" && l[0].state == SwState::Running
    });
    env.teardown().await;
    ctl.stop();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
