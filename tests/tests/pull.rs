//! Registry pulls against a real `docker-registry` (Debian's distribution
//! registry) on loopback: plain HTTP, TLS with a CA made by the test, basic
//! auth, a byte-flipping proxy, a connection-cutting proxy, the disk
//! budget and image GC. Each test has its own registry, port, temp dir and
//! user containerd.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outpost_api::{Secret, SwState};
use outpost_runtime::image::content;
use outpost_runtime::pull::{
    self, gc, push, Credentials, PullError, PullOptions, Reference, Registry, RegistryOptions,
};
use outpost_tests::{image_dir, read, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(20);

/// A `docker-registry` process on a random loopback port.
struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// CA PEM when serving TLS.
    ca: Option<Vec<u8>>,
}

impl TestRegistry {
    async fn start(tls: bool, user: Option<(&str, &str)>) -> TestRegistry {
        let dir = tempfile::Builder::new()
            .prefix("outpost-reg")
            .tempdir_in("/tmp")
            .unwrap();
        let port = free_port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test\n",
            dir.path().join("data").display()
        );
        let mut ca = None;
        if tls {
            let (ca_pem, cert, key) = make_certs();
            std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), key).unwrap();
            cfg += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            );
            ca = Some(ca_pem.into_bytes());
        }
        if let Some((u, p)) = user {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apache2-utils) is needed");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
            cfg += &format!(
                "auth:\n  htpasswd:\n    realm: outpost-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        let reg = TestRegistry {
            child,
            dir,
            port,
            ca,
        };
        TestEnv::eventually("registry listening", T, || async {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        reg
    }

    fn host(&self) -> String {
        if self.ca.is_some() {
            format!("localhost:{}", self.port)
        } else {
            format!("127.0.0.1:{}", self.port)
        }
    }

    fn opts(&self, user: Option<(&str, &str)>) -> RegistryOptions {
        RegistryOptions {
            credentials: user.map(|(u, p)| Credentials {
                username: u.into(),
                password: Secret::new(p),
            }),
            ca_pem: self.ca.clone(),
            plain_http: self.ca.is_none(),
        }
    }

    /// Pushes `images/<name>` as `<host>/outpost/<name>:<tag>`; returns
    /// (reference, manifest digest).
    async fn push(&self, name: &str, tag: &str, user: Option<(&str, &str)>) -> (String, String) {
        let r = format!("{}/outpost/{name}:{tag}", self.host());
        let d = push::push_layout(&image_dir(name), &r, &self.opts(user))
            .await
            .unwrap_or_else(|e| panic!("pushing {r}: {e}\n{}", self.log()));
        (r, d)
    }

    fn log(&self) -> String {
        read(&self.dir.path().join("registry.log"))
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// (CA PEM, server cert PEM, server key PEM) for localhost / 127.0.0.1.
fn make_certs() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "outpost test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn pull_opts(reg: &TestRegistry, user: Option<(&str, &str)>) -> PullOptions {
    PullOptions {
        registry: reg.opts(user),
        ..PullOptions::default()
    }
}

/// An app of `env` that runs image `reference` as is.
fn app_for(env: &TestEnv, name: &str, reference: &str) -> outpost_api::AppConfig {
    let mut app = env.app(name, "unused");
    app.image = reference.to_owned();
    app
}

async fn wait_running_with_output(env: &TestEnv, id: &str, needle: &str) {
    TestEnv::eventually(&format!("{id} running"), T, || async {
        let s = env.runtime.state(id).await.unwrap()?;
        (s.sw_state() == SwState::Running).then_some(())
    })
    .await;
    let out = env.io(id).stdout;
    TestEnv::eventually(&format!("{needle:?} from {id}"), T, || async {
        read(&out).contains(needle).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_tag_by_digest_and_through_an_index_then_run() {
    let reg = TestRegistry::start(false, None).await;
    let env = TestEnv::start().await;
    let (r, digest) = reg.push("hello", "1.0", None).await;

    let (tx, rx) = tokio::sync::watch::channel(Default::default());
    let mut opts = pull_opts(&reg, None);
    opts.progress = Some(tx);
    let t0 = std::time::Instant::now();
    let rec = pull::pull(env.client(), &r, &opts)
        .await
        .expect("pull by tag");
    eprintln!("pull by tag: {:?}", t0.elapsed());
    assert_eq!(rec.manifest_digest, digest);
    let p = *rx.borrow();
    assert!(p.total > 0 && p.done == p.total, "progress {p:?}");

    // By digest: same manifest, blobs all present (nothing refetched).
    let by_digest = format!("{}/outpost/hello@{digest}", reg.host());
    let rec2 = pull::pull(env.client(), &by_digest, &pull_opts(&reg, None))
        .await
        .expect("pull by digest");
    assert_eq!(rec2.chain_id, rec.chain_id);

    // An OCI index with another platform first: the host's entry is chosen.
    // (another image's manifest, pushed into the same repository)
    let other_digest = push::push_layout(
        &image_dir("sh"),
        &format!("{}/outpost/hello:other", reg.host()),
        &reg.opts(None),
    )
    .await
    .unwrap();
    let other_size = std::fs::metadata(
        image_dir("sh")
            .join("blobs/sha256")
            .join(other_digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();
    let hello_size = std::fs::metadata(
        image_dir("hello")
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();
    let hr = Reference::parse(&format!("{}/outpost/hello:multi", reg.host())).unwrap();
    let registry = Registry::new(&hr, &reg.opts(None)).unwrap();
    let other = if outpost_runtime::image::host_arch() == "amd64" {
        "s390x"
    } else {
        "amd64"
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest, "size": other_size,
              "platform": { "os": "linux", "architecture": other } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": hello_size,
              "platform": { "os": "linux", "architecture": outpost_runtime::image::host_arch() } },
        ]
    });
    push::put_manifest(
        &registry,
        "multi",
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&index).unwrap(),
    )
    .await
    .unwrap();
    let multi = format!("{}/outpost/hello:multi", reg.host());
    let rec3 = pull::pull(env.client(), &multi, &pull_opts(&reg, None))
        .await
        .expect("pull through index");
    assert_eq!(rec3.manifest_digest, digest);

    let app = app_for(&env, "hello", &r);
    env.run(&app).await;
    wait_running_with_output(&env, &app.task_id(), "hello 1").await;

    // Missing tag: a clear not-found naming registry and repository.
    let e = pull::pull(
        env.client(),
        &format!("{}/outpost/hello:nope", reg.host()),
        &pull_opts(&reg, None),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PullError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("outpost/hello"), "{e}");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_basic_auth() {
    let user = Some(("edge", "s3cret-pw"));
    let reg = TestRegistry::start(true, user).await;
    let env = TestEnv::start().await;
    let (r, _) = reg.push("hello", "latest", user).await;

    let rec = pull::pull(env.client(), &r, &pull_opts(&reg, user))
        .await
        .expect("pull with CA and credentials");
    let app = app_for(&env, "hello", &rec.name);
    env.run(&app).await;
    wait_running_with_output(&env, &app.task_id(), "hello 1").await;

    // Wrong password: names registry and repository, never the password.
    let e = pull::pull(
        env.client(),
        &r,
        &pull_opts(&reg, Some(("edge", "wrong-pw"))),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            PullError::Unauthorized {
                with_credentials: true,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&reg.host()) && text.contains("outpost/hello"),
        "{text}"
    );
    assert!(!text.contains("wrong-pw") && !format!("{e:?}").contains("wrong-pw"));
    // No credentials at all.
    let e = pull::pull(env.client(), &r, &pull_opts(&reg, None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("requires credentials"), "{e}");
    // Without the CA the TLS handshake fails.
    let mut no_ca = pull_opts(&reg, user);
    no_ca.registry.ca_pem = None;
    let e = pull::pull(env.client(), &r, &no_ca).await.unwrap_err();
    assert!(matches!(e, PullError::Http { .. }), "{e}");
    env.teardown().await;
}

/// What a [`Proxy`] does to the first large blob response it relays.
#[derive(Clone, Copy)]
enum Mischief {
    /// Flip one byte in the body.
    Corrupt,
    /// Close the connection after this many body bytes.
    Cut(usize),
}

/// A one-request-per-connection HTTP relay in front of a registry.
struct Proxy {
    port: u16,
    done: Arc<AtomicBool>,
    range_requests: Arc<AtomicUsize>,
}

/// Blob responses smaller than this are relayed untouched (config, small layers).
const LARGE: usize = 64 * 1024;

impl Proxy {
    async fn start(upstream: u16, mischief: Mischief) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let done = Arc::new(AtomicBool::new(false));
        let range_requests = Arc::new(AtomicUsize::new(0));
        let (d, rr) = (done.clone(), range_requests.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = l.accept().await {
                let (d, rr) = (d.clone(), rr.clone());
                tokio::spawn(async move {
                    let _ = relay(client, upstream, mischief, d, rr).await;
                });
            }
        });
        Proxy {
            port,
            done,
            range_requests,
        }
    }
}

async fn read_head(s: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Ok((buf, Vec::new()));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
    }
}

async fn relay(
    mut client: TcpStream,
    upstream: u16,
    mischief: Mischief,
    done: Arc<AtomicBool>,
    range_requests: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let (head, _) = read_head(&mut client).await?;
    let text = String::from_utf8_lossy(&head).to_string();
    if text.to_ascii_lowercase().contains("\r\nrange:") {
        range_requests.fetch_add(1, Ordering::SeqCst);
    }
    let is_blob_get = text.starts_with("GET ") && text.contains("/blobs/sha256:");
    // One request per connection keeps the relay simple.
    let mut lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let head = format!("{}\r\n\r\n", lines.join("\r\n"));
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).await?;
    up.write_all(head.as_bytes()).await?;
    let (rhead, mut body) = read_head(&mut up).await?;
    let rtext = String::from_utf8_lossy(&rhead).to_ascii_lowercase();
    let len: usize = rtext
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let target = is_blob_get && len >= LARGE && !done.swap(true, Ordering::SeqCst);
    client.write_all(&rhead).await?;
    let mut sent = 0usize;
    let mut tmp = vec![0u8; 16 * 1024];
    loop {
        if body.is_empty() {
            let n = up.read(&mut tmp).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&tmp[..n]);
        }
        if target {
            match mischief {
                Mischief::Corrupt => {
                    if sent <= LARGE / 2 && sent + body.len() > LARGE / 2 {
                        body[LARGE / 2 - sent] ^= 0xff;
                    }
                }
                Mischief::Cut(n) => {
                    if sent + body.len() >= n {
                        client.write_all(&body[..n - sent]).await?;
                        client.flush().await?;
                        return Ok(()); // drop both connections mid-body
                    }
                }
            }
        }
        client.write_all(&body).await?;
        sent += body.len();
        body.clear();
    }
    client.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_blob_is_rejected_before_commit() {
    let reg = TestRegistry::start(false, None).await;
    let env = TestEnv::start().await;
    let (r, _) = reg.push("hello", "latest", None).await;
    let proxy = Proxy::start(reg.port, Mischief::Corrupt).await;
    let via = r.replace(&reg.port.to_string(), &proxy.port.to_string());
    let e = pull::pull(env.client(), &via, &pull_opts(&reg, None))
        .await
        .unwrap_err();
    assert!(proxy.done.load(Ordering::SeqCst), "proxy saw no large blob");
    let PullError::Digest { digest, .. } = &e else {
        panic!("want a digest error, got {e}");
    };
    assert!(e.to_string().contains("outpost/hello"), "{e}");
    assert!(content::info(env.client(), digest).await.unwrap().is_none());
    assert!(outpost_runtime::image::resolve(env.client(), &via)
        .await
        .is_err());
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transfer_resumes_with_range() {
    let reg = TestRegistry::start(false, None).await;
    let env = TestEnv::start().await;
    let (r, digest) = reg.push("hello", "latest", None).await;
    let proxy = Proxy::start(reg.port, Mischief::Cut(LARGE / 2 + 123)).await;
    let via = r.replace(&reg.port.to_string(), &proxy.port.to_string());
    let rec = pull::pull(env.client(), &via, &pull_opts(&reg, None))
        .await
        .expect("pull resumes");
    assert!(proxy.done.load(Ordering::SeqCst), "proxy cut nothing");
    assert_eq!(
        proxy.range_requests.load(Ordering::SeqCst),
        1,
        "one ranged resume"
    );
    assert_eq!(rec.manifest_digest, digest);
    let app = app_for(&env, "hello", &via);
    env.run(&app).await;
    wait_running_with_output(&env, &app.task_id(), "hello 1").await;
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_over_the_disk_budget_is_refused_before_writing() {
    let reg = TestRegistry::start(false, None).await;
    let env = TestEnv::start().await;
    let (r, _) = reg.push("hello", "latest", None).await;
    let root: PathBuf = env.layout.user_root();
    let free = pull::budget::available(&root).unwrap();
    let mut opts = pull_opts(&reg, None);
    opts.content_root = Some(root.clone());
    // The image no longer fits, even if other tests free space meanwhile.
    opts.reserve = free + (64 << 30);
    let e = pull::pull(env.client(), &r, &opts).await.unwrap_err();
    assert!(matches!(e, PullError::DiskBudget { .. }), "{e}");
    assert!(e.to_string().contains(&root.display().to_string()), "{e}");
    // Not a byte written: no content at all, no lease left.
    assert_eq!(content_count(&env).await, 0);
    assert!(outpost_runtime::lease::list_own(env.client())
        .await
        .unwrap()
        .is_empty());
    // With the default reserve it fits.
    opts.reserve = pull::budget::DEFAULT_RESERVE;
    pull::pull(env.client(), &r, &opts)
        .await
        .expect("pull within budget");
    env.teardown().await;
}

async fn content_count(env: &TestEnv) -> usize {
    use containerd_client::services::v1::ListContentRequest;
    let c = env.client();
    let mut s = c
        .content()
        .list(c.req(ListContentRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(m) = s.message().await.unwrap() {
        n += m.info.len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_an_unused_image_and_keeps_the_known_good_one() {
    let reg = TestRegistry::start(false, None).await;
    let env = TestEnv::start().await;
    let (hello, _) = reg.push("hello", "latest", None).await;
    let (sh, _) = reg.push("sh", "latest", None).await;
    let h = pull::pull(env.client(), &hello, &pull_opts(&reg, None))
        .await
        .unwrap();
    pull::pull(env.client(), &sh, &pull_opts(&reg, None))
        .await
        .unwrap();

    let app = app_for(&env, "hello", &hello);
    env.run(&app).await;
    wait_running_with_output(&env, &app.task_id(), "hello 1").await;
    let obs = env.runtime.find(&app.task_id()).await.unwrap().unwrap();
    env.runtime.remove_container(&obs).await.unwrap();

    // Within the grace period nothing goes.
    let keep: HashSet<String> = [sh.clone()].into();
    let gone = gc::collect_images(env.client(), &keep, Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(gone.is_empty(), "{gone:?}");
    // Current config has no app; the known-good config still names `sh`.
    let gone = gc::collect_images(env.client(), &keep, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(gone, vec![hello.clone()]);
    let names = outpost_runtime::image::list_images(env.client())
        .await
        .unwrap();
    assert_eq!(names, vec![sh.clone()]);
    // containerd's GC took hello's own content (its manifest); sh still runs.
    assert!(content::info(env.client(), &h.manifest_digest)
        .await
        .unwrap()
        .is_none());
    let app2 = app_for(&env, "sh", &sh);
    env.runtime
        .create_app(&app2, 1, &env.io(&app2.task_id()))
        .await
        .expect("known-good image still usable");
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_pulls_registry_references_and_the_cli_lists_them() {
    let reg = TestRegistry::start(false, None).await;
    let env = TestEnv::start().await;
    let (hello, _) = reg.push("hello", "2.0", None).await;
    let (sh, _) = reg.push("sh", "latest", None).await;
    // The daemon's image step: a registry reference is pulled (loopback → HTTP).
    let rec = outpost_agent::daemon::images::ensure(&env.runtime, None, &hello)
        .await
        .expect("ensure pulls");
    assert_eq!(rec.name, hello);
    let app = app_for(&env, "hello", &hello);
    env.run(&app).await;
    wait_running_with_output(&env, &app.task_id(), "hello 1").await;

    // `outpost pull` against the same user containerd socket, then `outpost images`.
    let cli = outpost_tests::workspace_bin("outpost");
    let out = tokio::process::Command::new(&cli)
        .arg("--root")
        .arg(env.dir.path())
        .args(["pull", &sh])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "outpost pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokio::process::Command::new(&cli)
        .arg("--root")
        .arg(env.dir.path())
        .args(["images", "--json"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed in {rows}"))
    };
    assert_eq!(row(&hello)["apps"], serde_json::json!([app.task_id()]));
    assert_eq!(row(&sh)["apps"], serde_json::json!([]));
    assert!(row(&sh)["size"].as_u64().unwrap() > 0);
    env.teardown().await;
}

/// The agent pulls with the device config's registry settings (private CA,
/// basic auth), never shows the password, and deletes the image once no
/// config needs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_uses_config_credentials_and_collects_unused_images() {
    let password = "s3cret-config-pw";
    let reg = TestRegistry::start(true, Some(("device", password))).await;
    let (image, _) = reg.push("hello", "3.0", Some(("device", password))).await;
    let mut env = outpost_tests::agent::AgentEnv::new();
    env.flags
        .extend(["--image-gc-secs".to_string(), "1".to_string()]);
    let ca = String::from_utf8(reg.ca.clone().unwrap()).unwrap();
    let ca_yaml: String = ca.lines().map(|l| format!("      {l}\n")).collect();
    let registries = format!(
        "registries:\n  - host: \"{}\"\n    username: device\n    password: {password}\n    ca_pem: |\n{ca_yaml}",
        reg.host()
    );
    let app = outpost_tests::agent::app_yaml(&env.uuid(1), "pulled", 1, "hello", "")
        .replace("hello:latest", &image);
    env.write_config(&format!("generation: 1\n{registries}apps:\n{app}"));
    env.start_agent();
    env.wait_running(&["pulled"], Duration::from_secs(60));
    let (_, status, _) = env.outpost(&["status", "pulled", "--json"]);
    let (_, list, _) = env.outpost(&["list"]);
    assert!(list.contains(&image), "{list}");
    for text in [&status, &list, &env.agent_log()] {
        assert!(!text.contains(password), "the registry password leaked");
    }

    // No config needs the image any more: it goes after the grace period.
    env.write_config(&format!("generation: 2\n{registries}apps: []\n"));
    env.wait_for("app removed", T, |l| l.is_empty());
    let rt = env.runtime().await;
    TestEnv::eventually("image collected", Duration::from_secs(30), || async {
        let names = outpost_runtime::image::list_images(rt.client())
            .await
            .ok()?;
        (!names.contains(&image)).then_some(())
    })
    .await;
    env.teardown().await;
}
