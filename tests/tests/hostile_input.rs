//! Hostile input end to end (issue 18): bad config entries against a real
//! outpostd, containerd and redb; a malicious controller (real TLS with the
//! controller's own server certificate) answering the config poll with
//! 256 MiB; a malicious registry answering with endless bodies.
//!
//! Each bad entry is rejected on its own with its path; oversized answers
//! are refused with an error naming the endpoint and the limit, the agent's
//! peak memory stays within 64 MiB of what it was, and the config in effect
//! keeps running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_api::SwState;
use outpost_tests::agent::{app_yaml, tail, AgentEnv};
use outpost_tests::controller::{device, Controller};
use outpost_tests::vm_hwm_kib;

const T: Duration = Duration::from_secs(60);
/// What the hostile servers send: 256 MiB.
const HUGE: u64 = 256 << 20;

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_app_entries_are_rejected_alone_with_their_paths() {
    let mut env = AgentEnv::new();
    let good = app_yaml(&env.uuid(1), "good", 1, "hello", "");
    // `..:latest` named the directory above `--images`.
    let dots = app_yaml(&env.uuid(2), "dots", 2, "..", "");
    let u3 = env.uuid(3);
    // 2^60 KiB × 1024 wraps a u64 (and panicked the debug agent).
    let mem = format!(
        "  - uuid: {u3}\n    version: \"1\"\n    display_name: mem\n    app_num: 3\n    image: hello:latest\n    resources: {{ memory_kib: 1152921504606846976, vcpus: 1 }}\n    stop_timeout: 3s\n"
    );
    let procmount = app_yaml(
        &env.uuid(4),
        "procmount",
        4,
        "hello",
        &format!(
            "    volumes:\n      - {{ uuid: {}, mount_dir: /proc/sys }}\n",
            env.uuid(40)
        ),
    );
    let envname = app_yaml(
        &env.uuid(5),
        "envname",
        5,
        "hello",
        "    env:\n      \"A\\nB\": x\n",
    );
    env.write_config(&format!(
        "generation: 1\napps:\n{good}{dots}{mem}{procmount}{envname}"
    ));
    env.start_agent();

    let wants = [
        (
            "dots",
            "apps[1].image: \"..:latest\" is not a valid image reference",
        ),
        (
            "mem",
            "apps[2].resources.memory_kib: must be at most 1073741824 (1 TiB)",
        ),
        (
            "procmount",
            "apps[3].volumes[0].mount_dir: \"/proc/sys\" is on or under /proc",
        ),
        (
            "envname",
            "apps[4].env.A\\nB: a variable name must not contain a newline",
        ),
    ];
    let list = env.wait_for("good RUNNING and every hostile entry rejected", T, |l| {
        let running = l
            .iter()
            .any(|a| a.display_name == "good" && a.state == SwState::Running);
        running
            && wants.iter().all(|(name, want)| {
                l.iter().any(|a| {
                    &a.display_name == name
                        && a.error.as_ref().is_some_and(|e| e.message.contains(want))
                })
            })
    });
    for (name, _) in wants {
        let a = list.iter().find(|a| a.display_name == name).unwrap();
        assert!(
            a.domain.is_none(),
            "{name}: no container for a rejected app"
        );
    }
    env.teardown().await;
}

/// A TLS server on `addr` with the controller's certificate that answers
/// every config poll with [`HUGE`] bytes (by turns with a Content-Length
/// header and without one, to the close) and anything else with `{}`.
struct HostileController {
    config_polls: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    addr: String,
}

impl HostileController {
    fn start(ctl: &Controller) -> HostileController {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert = std::fs::read(ctl.dir().join("server.cert.pem")).unwrap();
        let key = std::fs::read(ctl.dir().join("server.key.pem")).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind(&ctl.addr).unwrap();
        let h = HostileController {
            config_polls: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            addr: ctl.addr.clone(),
        };
        let (polls, stop) = (h.config_polls.clone(), h.stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(tcp) = conn else { continue };
                let (config, polls) = (config.clone(), polls.clone());
                std::thread::spawn(move || {
                    let _ = serve(tcp, config, &polls);
                });
            }
        });
        h
    }
}

impl Drop for HostileController {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    polls: &AtomicU64,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let head = read_head(&mut s)?;
    if head.lines().next().unwrap_or("").contains("/config") {
        let n = polls.fetch_add(1, Ordering::SeqCst);
        let length = if n % 2 == 0 {
            format!("Content-Length: {HUGE}\r\n")
        } else {
            String::new()
        };
        s.write_all(
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"x\"\r\n{length}Connection: close\r\n\r\n{{\"payload\":\"")
                .as_bytes(),
        )?;
        stream_huge(&mut s)
    } else {
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")?;
        s.flush()
    }
}

/// Writes [`HUGE`] bytes of `A` until done or the peer hangs up.
fn stream_huge(s: &mut impl Write) -> std::io::Result<()> {
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..(HUGE >> 20) {
        s.write_all(&chunk)?;
    }
    s.flush()
}

/// The request line and headers (bounded), the body left unread.
fn read_head(s: &mut impl Read) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        if s.read(&mut b)? == 0 {
            break;
        }
        head.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_config_answer_is_refused_and_the_config_in_effect_keeps_running() {
    let mut ctl = Controller::init(&[]);
    ctl.start();
    let (mut env, serial) = device(&ctl, false);
    env.start_agent_with(false);
    let dev = ctl.wait_device(&serial, T);
    let hello = app_yaml(&env.uuid(1), "hello", 1, "hello", "");
    assert_eq!(ctl.set_config(&dev, &format!("apps:\n{hello}")).0, 0);
    let pid_before = env.wait_running(&["hello"], Duration::from_secs(90))[0]
        .domain
        .as_ref()
        .and_then(|d| d.pid);
    env.wait_settled(1, T);
    let agent_pid = env.agent.as_ref().unwrap().id();
    let idle = vm_hwm_kib(agent_pid);
    assert!(idle > 0, "VmHWM of outpostd {agent_pid}");

    // The controller is replaced by a hostile one on the same address.
    ctl.stop();
    let hostile = HostileController::start(&ctl);
    let limit = outpost_cloud::client::MAX_ENVELOPE_BYTES;
    let declared = format!(
        "the answer to GET config is {HUGE} bytes (Content-Length), more than the limit of {limit}"
    );
    let streamed = "bytes or more, more than the limit of 8388608; refused";
    // The agent polls again only once it is done with the previous answer:
    // a third poll means both kinds of answer were handled.
    wait_until("three polls of the hostile controller", T, || {
        hostile.config_polls.load(Ordering::SeqCst) >= 3
    });
    let peak = vm_hwm_kib(agent_pid);
    println!("outpostd VmHWM idle {idle} KiB, after the hostile answers {peak} KiB");
    assert!(
        peak < idle + 64 * 1024,
        "outpostd peak memory grew from {idle} KiB to {peak} KiB\n{}",
        tail(&env.agent_log(), 20)
    );
    let log = env.agent_log();
    assert!(
        log.contains(&declared) && log.contains(streamed),
        "both refusals in the agent log:\n{}",
        tail(&log, 20)
    );

    // The config in effect keeps running, untouched.
    let v = env.outpost(&["version"]).1;
    assert!(v.contains("config generation 1 from controller"), "{v}");
    let l = env.list();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0].state, SwState::Running);
    assert_eq!(l[0].domain.as_ref().and_then(|d| d.pid), pid_before);
    drop(hostile);
    env.teardown().await;
}

/// A plain-HTTP registry on loopback: every manifest GET is a Bearer
/// challenge, the token endpoint answers [`HUGE`] bytes with no length;
/// `/v2/err/…` answers 500 with [`HUGE`] bytes.
fn hostile_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let realm = format!("http://{addr}/token");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let realm = realm.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let head = read_head(&mut s)?;
                let line = head.lines().next().unwrap_or("").to_owned();
                if line.contains("/token") {
                    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"token\":\"")?;
                    stream_huge(&mut s)
                } else if line.contains("/v2/err/") {
                    s.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n",
                    )?;
                    stream_huge(&mut s)
                } else {
                    s.write_all(format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_with_endless_token_and_error_bodies_is_refused() {
    use outpost_runtime::pull::{resolve_manifest, Reference, Registry, RegistryOptions};
    let addr = hostile_registry();
    let opts = RegistryOptions {
        plain_http: true,
        ..RegistryOptions::default()
    };
    for (repo, want) in [
        ("tok", "reading the token response: "),
        ("err", "(a body of "),
    ] {
        let r = Reference::parse(&format!("{addr}/{repo}:1")).unwrap();
        let reg = Registry::new(&r, &opts).unwrap();
        let started = Instant::now();
        let e = tokio::time::timeout(T, resolve_manifest(&reg, &r))
            .await
            .unwrap_or_else(|_| panic!("{repo}: no answer within {T:?}"))
            .map(drop)
            .unwrap_err()
            .to_string();
        println!("{repo}: refused after {:?}: {e}", started.elapsed());
        assert!(e.contains(want), "{repo}: {e}");
        assert!(e.contains("or more"), "{repo}: {e}");
        assert!(
            e.len() < 1024,
            "{repo}: the error quotes little: {}",
            e.len()
        );
    }
}
