//! Stateless replicas: `outpost-controller serve` processes sharing one
//! (private) PostgreSQL, devices long-polling over real mTLS spread over
//! them. A config set through one replica wakes the long-polls held by
//! every replica (NOTIFY), a replica killed mid-push loses nothing (its
//! devices reconnect to the other), and a config set while a replica could
//! not reach the database reaches its devices once it reconnects (catch-up).
//! Always on PostgreSQL, whatever `OUTPOST_CONTROLLER_BACKEND` says.

mod common;

use std::time::{Duration, Instant};

use common::replica::{register, replica_dir, wait_for, Replica, SimDevice};
use outpost_controller::pgtest::Cluster;
use outpost_controller::StateDir;

/// Devices in the fleet tests (`OUTPOST_REPLICA_DEVICES`, default 200).
fn fleet_size() -> usize {
    std::env::var("OUTPOST_REPLICA_DEVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

struct Setup {
    _dir: tempfile::TempDir,
    src: StateDir,
    pg: Cluster,
    replicas: Vec<Replica>,
    bases: Vec<String>,
}

/// A state dir, a private cluster and two replicas on it (replica 1
/// connecting as `replica1_user`, if given).
fn setup(replica1_user: Option<&str>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let src = StateDir::new(dir.path().join("state"));
    common::init_state(&src);
    let (pg, url) = common::private_postgres();
    let url1 = match replica1_user {
        Some(u) => {
            pg.psql("outpost", &format!("CREATE ROLE {u} LOGIN SUPERUSER"))
                .unwrap();
            url.replace("user=postgres", &format!("user={u}"))
        }
        None => url.clone(),
    };
    let replicas = vec![
        Replica::start(&src, &replica_dir(dir.path(), 0), &url),
        Replica::start(&src, &replica_dir(dir.path(), 1), &url1),
    ];
    let bases = replicas.iter().map(Replica::base).collect();
    Setup {
        _dir: dir,
        src,
        pg,
        replicas,
        bases,
    }
}

/// `n` devices, registered alternately through each replica.
async fn fleet(s: &Setup, n: usize) -> Vec<SimDevice> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(register(&s.src, &s.bases[i % 2], &format!("SN-{i}")).await);
    }
    out
}

/// Starts each device's long-poll on the replica it did NOT register
/// through (so the other replica must have learnt its certificate).
fn poll_all(
    s: &Setup,
    devices: &[SimDevice],
    min_generation: u64,
    etags: Option<Vec<String>>,
) -> Vec<tokio::task::JoinHandle<common::replica::Received>> {
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (d, state, bases) = (d.clone(), s.src.clone(), s.bases.clone());
            let etag = etags.as_ref().map(|e| e[i].clone());
            tokio::spawn(async move {
                d.poll_until(&state, &bases, (i + 1) % 2, min_generation, etag)
                    .await
            })
        })
        .collect()
}

fn wait_polls(s: &Setup, per_replica: &[u64]) {
    for (r, want) in s.replicas.iter().zip(per_replica) {
        if *want > 0 {
            wait_for(
                "long-polls waiting on a replica",
                Duration::from_secs(60),
                || r.stat("long_polls_waiting") >= *want,
            );
        }
    }
}

fn set_config_all(r: &Replica, dir: &std::path::Path, apps: usize) {
    let file = dir.join(format!("config-{apps}.yaml"));
    std::fs::write(&file, common::doc(apps)).unwrap();
    let (ok, out, err) = r.cli(&["device", "set-config", "--all", file.to_str().unwrap()]);
    assert!(ok, "set-config --all: {out}{err}\n{}", r.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_set_through_one_replica_wakes_long_polls_on_every_replica() {
    let n = fleet_size();
    let s = setup(None);
    let devices = fleet(&s, n).await;
    let polls = poll_all(&s, &devices, 1, None);
    wait_polls(&s, &[(n / 2) as u64, n.div_ceil(2) as u64]);
    let start = Instant::now();
    set_config_all(&s.replicas[0], s._dir.path(), 2);
    let mut lat = Vec::new();
    let mut from_other = 0;
    for p in polls {
        let got = p.await.unwrap();
        assert_eq!(got.payload.generation, 1);
        from_other += usize::from(got.from == 1);
        lat.push(got.at.saturating_duration_since(start));
    }
    lat.sort();
    eprintln!(
        "{n} devices over 2 replicas: p50 {:?} p99 {:?} max {:?}",
        lat[n / 2],
        lat[n * 99 / 100],
        lat[n - 1]
    );
    assert_eq!(
        from_other,
        n.div_ceil(2),
        "half the fleet was woken by replica 1"
    );
    assert!(s.replicas[1].stat("notifications_received") >= n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_during_a_push_loses_no_device() {
    let n = fleet_size();
    let mut s = setup(None);
    let devices = fleet(&s, n).await;
    let polls = poll_all(&s, &devices, 1, None);
    wait_polls(&s, &[(n / 2) as u64, n.div_ceil(2) as u64]);
    // Replica 1 hangs (SIGSTOP) so the push through replica 0 reaches only
    // replica 0's half of the fleet; then, mid-push, replica 1 is killed:
    // its devices' connections drop and they reconnect to replica 0.
    s.replicas[1].freeze();
    set_config_all(&s.replicas[0], s._dir.path(), 1);
    let (on_zero, on_one): (Vec<_>, Vec<_>) = polls
        .into_iter()
        .enumerate()
        .partition(|(i, _)| (i + 1) % 2 == 0);
    for (_, p) in on_zero {
        assert_eq!(p.await.unwrap().payload.generation, 1);
    }
    s.replicas[1].kill9();
    let mut moved = 0;
    for (_, p) in on_one {
        let got = p.await.unwrap();
        assert_eq!(
            got.payload.generation, 1,
            "every device got the pushed config"
        );
        assert_eq!(got.from, 0, "answered by the surviving replica");
        moved += 1;
    }
    assert_eq!(moved, n.div_ceil(2));
    eprintln!("{n} devices: {moved} reconnected to the surviving replica and got the push");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reconnect_after_a_postgres_restart_and_catch_up() {
    const N: usize = 20;
    let mut s = setup(Some("replica1"));
    let devices = fleet(&s, N).await;
    // every device waits on replica 1
    let to_one = |s: &Setup, min: u64, etags: Option<Vec<String>>| {
        devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (d, state) = (d.clone(), s.src.clone());
                let bases = vec![s.bases[1].clone()];
                let etag = etags.as_ref().map(|e| e[i].clone());
                tokio::spawn(async move { d.poll_until(&state, &bases, 0, min, etag).await })
            })
            .collect::<Vec<_>>()
    };
    let polls = to_one(&s, 1, None);
    wait_polls(&s, &[0, N as u64]);

    // 1. PostgreSQL restarts (fast shutdown: every connection dropped)
    let catch_ups = s.replicas[1].stat("catch_ups");
    s.pg.stop_fast();
    s.pg.resume().unwrap();
    wait_for(
        "replica 1 to reconnect and catch up",
        Duration::from_secs(30),
        || s.replicas[1].stat("catch_ups") > catch_ups,
    );
    set_config_all(&s.replicas[0], s._dir.path(), 1);
    let mut etags = Vec::new();
    for p in polls {
        let got = p.await.unwrap();
        assert_eq!(got.payload.generation, 1);
        etags.push(got.etag);
    }

    // 2. replica 1 cannot reach the database while a config is set
    let polls = to_one(&s, 2, Some(etags));
    wait_polls(&s, &[0, N as u64]);
    let catch_ups = s.replicas[1].stat("catch_ups");
    s.pg.psql(
        "outpost",
        "ALTER ROLE replica1 NOLOGIN; \
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'replica1'",
    )
    .unwrap();
    set_config_all(&s.replicas[0], s._dir.path(), 2);
    // replica 1 could not have heard it: it holds no connection
    let held =
        s.pg.psql(
            "outpost",
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'replica1'",
        )
        .unwrap();
    assert_eq!(held, "0", "replica 1 is cut off while the config is set");
    s.pg.psql("outpost", "ALTER ROLE replica1 LOGIN").unwrap();
    for p in polls {
        let got = p.await.unwrap();
        assert_eq!(
            got.payload.generation, 2,
            "the catch-up delivered the missed config"
        );
    }
    assert!(s.replicas[1].stat("catch_ups") > catch_ups);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_are_recorded_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    common::init_state(&state);
    let (pg, url) = tokio::task::spawn_blocking(common::private_postgres)
        .await
        .unwrap();
    let open = |url: String| {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            outpost_controller::state::Controller::open_with(
                state,
                false,
                outpost_controller::Limits::default(),
                Some(&url),
                None,
            )
            .map(drop)
        })
    };
    open(url.clone()).await.unwrap().unwrap();
    // a second replica starting on the migrated database applies nothing
    open(url.clone()).await.unwrap().unwrap();
    let applied = pg
        .psql(
            "outpost",
            "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM schema_migrations",
        )
        .unwrap();
    assert_eq!(applied, "1:initial,2:revocation,3:base_os,4:presence");
    pg.psql(
        "outpost",
        "INSERT INTO schema_migrations (version, name) VALUES (99, 'future')",
    )
    .unwrap();
    let err = open(url.clone()).await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "schema version 99, newer than this binary's {}",
            outpost_controller::store::pg::SCHEMA_VERSION
        )),
        "{err}"
    );
    assert!(!err.contains("password"), "{err}");
    // a bad URL names the problem, not the secret
    let err = open("postgres://u:s3cret@[bad".into())
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--database") && !err.contains("s3cret"),
        "{err}"
    );
}

/// `device logs -f` through one replica shows lines a device uploads
/// through the other (which wakes no one there) within a few seconds, not
/// only when the follow request's 30 s wait ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_one_replica_sees_logs_uploaded_through_the_other() {
    use std::io::BufRead;
    let s = setup(None);
    let d = register(&s.src, &s.bases[0], "SN-logs").await;
    wait_for(
        "replica 1 to know the device",
        Duration::from_secs(20),
        || s.replicas[1].cli(&["device", "status", &d.uuid]).0,
    );
    let mut follower = std::process::Command::new(common::replica::BIN)
        .arg("--state")
        .arg(s.replicas[1].state.root())
        .args(["device", "logs", &d.uuid, "-f"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    // The follow request is held on replica 1 before the upload.
    wait_for(
        "the follower's request held",
        Duration::from_secs(20),
        || s.replicas[1].stat("log_follows_waiting") == 1,
    );
    let entry = outpost_api::cloud::LogEntry {
        time: "2026-01-01T00:00:00.000000001Z".into(),
        source: "guest_vm-x.1.1".into(),
        app: None,
        msg: "through-replica-0".into(),
    };
    let t = Instant::now();
    let r = d
        .client
        .post(format!("{}/devices/{}/logs", s.bases[0], d.uuid))
        .header(outpost_api::cloud::BATCH_HEADER, "1")
        .body(common::log_batch(&[entry]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) if l.contains("through-replica-0") => break Some(t.elapsed()),
            _ if Instant::now() > deadline => break None,
            _ => {}
        }
    };
    let _ = follower.kill();
    let _ = follower.wait();
    let seen = seen.expect("the follower on replica 1 did not show the line within 10 s");
    println!("line uploaded through replica 0 shown by `logs -f` on replica 1 after {seen:?}");
}

/// The device as `device list --json` on replica `r` shows it.
fn listed(r: &Replica, uuid: &str) -> serde_json::Value {
    let (ok, out, err) = r.cli(&["device", "list", "--json"]);
    assert!(ok, "device list: {out}{err}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    all.into_iter()
        .find(|d| d["uuid"] == uuid)
        .unwrap_or_else(|| panic!("device {uuid} not listed: {out}"))
}

/// "Last seen" and "connected" are the same on every replica: a device
/// long-polling replica 0 is shown connected, with a last-seen time, by
/// replica 1 (which it never called) within one presence batch; once it
/// stops, both show it not connected and keep the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_shows_where_a_device_was_last_seen() {
    let s = setup(None);
    let d = register(&s.src, &s.bases[0], "SN-seen").await;
    wait_for(
        "replica 1 to know the device",
        Duration::from_secs(20),
        || s.replicas[1].cli(&["device", "status", &d.uuid]).0,
    );
    assert_eq!(listed(&s.replicas[1], &d.uuid)["connected"], false);
    // long-polls of 5 s, one after the other, on replica 0 only
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll = {
        let (client, url) = (
            d.client.clone(),
            format!("{}/devices/{}/config?wait=5", s.bases[0], d.uuid),
        );
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 204, "no config is set");
            }
        })
    };
    wait_polls(&s, &[1, 0]);
    let t = Instant::now();
    let limit = outpost_controller::state::PRESENCE_EVERY * 2 + Duration::from_secs(5);
    wait_for("replica 1 to show the device connected", limit, || {
        listed(&s.replicas[1], &d.uuid)["connected"] == true
    });
    println!(
        "replica 1 showed the long-poll held by replica 0 after {:?}",
        t.elapsed()
    );
    let seen = listed(&s.replicas[1], &d.uuid)["last_seen"].clone();
    assert!(seen.is_string(), "last_seen on replica 1: {seen}");
    // it stops polling: within the connected window no replica shows it
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poll.await.unwrap();
    let t = Instant::now();
    wait_for(
        "replicas to show the device not connected",
        Duration::from_secs(60),
        || {
            s.replicas
                .iter()
                .all(|r| listed(r, &d.uuid)["connected"] == false)
        },
    );
    println!("shown not connected {:?} after its last poll", t.elapsed());
    assert!(listed(&s.replicas[1], &d.uuid)["last_seen"].is_string());
}

/// A CA and a certificate it issued for `localhost` (PEM: CA cert, server
/// cert, server key).
fn tls_material() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "outpost test database CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca_pem, server.pem(), key.serialize_pem())
}

/// A replica reaches PostgreSQL over TLS (`--database-ca`; plain TCP is
/// refused by the server): its pool and its LISTEN connection are both
/// encrypted, and a config set through a replica on the unix socket wakes
/// a long-poll it holds. The same replica with another CA is refused
/// (the server's certificate is verified, never just accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reaches_postgres_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let src = StateDir::new(dir.path().join("state"));
    common::init_state(&src);
    let (mut pg, _) = common::private_postgres();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ca, cert, key) = tls_material();
    pg.enable_tls(port, &cert, &key).unwrap();
    let ca_file = dir.path().join("db-ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let rogue_file = dir.path().join("rogue-ca.pem");
    std::fs::write(&rogue_file, tls_material().0).unwrap();
    let tls_url = format!("postgres://postgres@localhost:{port}/outpost");

    // another CA: refused at start, naming the certificate problem
    let out = std::process::Command::new(common::replica::BIN)
        .arg("--state")
        .arg(src.root())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &tls_url])
        .arg("--database-ca")
        .arg(&rogue_file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "served with an untrusted database certificate"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    println!("with another CA: {}", err.trim());

    let plain = Replica::start(&src, &replica_dir(dir.path(), 0), &pg.url("outpost"));
    let ca_arg = ca_file.to_str().unwrap();
    let tls = Replica::start_with(
        &src,
        &replica_dir(dir.path(), 1),
        &tls_url,
        &["--database-ca", ca_arg],
    );
    // the LISTEN connection is made by a task of its own after the start
    wait_for(
        "the TLS replica's LISTEN connection, encrypted",
        Duration::from_secs(20),
        || {
            pg.psql(
                "outpost",
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE s.ssl AND a.application_name = 'outpost-controller LISTEN'",
            )
            .unwrap()
                == "1"
        },
    );
    let d = register(&src, &plain.base(), "SN-tls").await;
    wait_for(
        "the TLS replica to know the device",
        Duration::from_secs(20),
        || tls.cli(&["device", "status", &d.uuid]).0,
    );
    let bases = vec![tls.base()];
    let poll = {
        let (d, src, bases) = (d.clone(), src.clone(), bases.clone());
        tokio::spawn(async move { d.poll_until(&src, &bases, 0, 1, None).await })
    };
    wait_for("the long-poll held", Duration::from_secs(20), || {
        tls.stat("long_polls_waiting") == 1
    });
    set_config_all(&plain, dir.path(), 1);
    let got = poll.await.unwrap();
    assert_eq!(got.payload.generation, 1);
}
