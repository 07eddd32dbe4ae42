//! App networking with the real CNI plugins (`/usr/lib/cni`) and real
//! containers: one named network namespace per task, interfaces from
//! bridge + host-local, port maps from portmap.
//!
//! Only addresses on this machine are used: the tests' own bridge subnets
//! (`10.213.<n>.0/24`, a bridge `op-<uuid prefix>` each test creates and
//! deletes) and the host's loopback for port maps.

use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::Duration;

use outpost_api::{AppConfig, NetworkConfig};
use outpost_runtime::net::conflist::bridge_name;
use outpost_tests::TestEnv;

fn network(third_octet: u8) -> NetworkConfig {
    serde_json::from_value(serde_json::json!({
        "uuid": uuid::Uuid::new_v4().to_string(),
        "name": format!("lan{third_octet}"),
        "subnet": format!("10.213.{third_octet}.0/24"),
        "nat": false,
    }))
    .unwrap()
}

fn attach(app: &mut AppConfig, net: &NetworkConfig, extra: serde_json::Value) {
    let mut itf = serde_json::json!({ "network": net.uuid });
    itf.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.interfaces = vec![serde_json::from_value(itf).unwrap()];
}

async fn run(env: &TestEnv, app: &AppConfig, nets: &[NetworkConfig]) {
    env.runtime
        .create_app_with_networks(app, nets, 1, &env.io(&app.task_id()))
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", app.display_name));
    env.runtime.start(&app.task_id()).await.expect("start");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cmd(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a network and its tasks can leave behind on the host.
#[derive(Debug, PartialEq, Eq)]
struct Census {
    veths_on_bridge: Vec<String>,
    iptables_rules: Vec<String>,
    leases: Vec<String>,
    netns: Vec<String>,
    records: Vec<String>,
}

fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn census(env: &TestEnv, net: &NetworkConfig, tasks: &[String]) -> Census {
    let subnet_prefix = net.subnet.to_string().trim_end_matches("0/24").to_owned();
    Census {
        veths_on_bridge: cmd("ip", &["-o", "link", "show", "master", &bridge_name(net)])
            .lines()
            .map(str::to_owned)
            .collect(),
        iptables_rules: cmd("iptables-save", &[])
            .lines()
            .chain(cmd("iptables-save", &["-t", "nat"]).lines())
            .filter(|l| tasks.iter().any(|t| l.contains(t.as_str())) || l.contains(&subnet_prefix))
            .map(str::to_owned)
            .collect(),
        // host-local keeps `lock` and `last_reserved_ip.0`; a lease is a file named by its IP.
        leases: files(&env.layout.net_ipam())
            .into_iter()
            .filter(|f| f.contains(&subnet_prefix))
            .collect(),
        netns: files(&env.layout.netns_dir()),
        records: files(&env.layout.net_attachments()),
    }
}

fn empty_census() -> Census {
    Census {
        veths_on_bridge: vec![],
        iptables_rules: vec![],
        leases: vec![],
        netns: vec![],
        records: vec![],
    }
}

async fn remove_all(env: &TestEnv, tasks: &[String]) {
    for t in tasks {
        let obs = env.runtime.find(t).await.unwrap().expect("observed app");
        env.runtime.remove_container(&obs).await.expect("remove");
    }
}

/// Deletes the network's bridge when dropped, also when a test fails
/// (the bridge plugin creates it and never deletes it).
struct BridgeGuard(String);

impl BridgeGuard {
    fn new(net: &NetworkConfig) -> BridgeGuard {
        BridgeGuard(bridge_name(net))
    }
}

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.0])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_reach_each_other_static_ip_and_mac_are_honoured_and_nothing_leaks() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let net = network(71);
    let _bridge = BridgeGuard::new(&net);
    let mut a = env.app("a", "sh");
    attach(
        &mut a,
        &net,
        serde_json::json!({ "ip": "10.213.71.10", "mac": "02:00:0a:d5:47:0a" }),
    );
    let mut b = env.app("b", "sh");
    b.app_num = 2;
    attach(&mut b, &net, serde_json::json!({}));
    let tasks = vec![a.task_id(), b.task_id()];
    assert_eq!(census(&env, &net, &tasks), empty_census());

    run(&env, &a, std::slice::from_ref(&net)).await;
    run(&env, &b, std::slice::from_ref(&net)).await;

    let a_ips = env.runtime.app_ips(&a.task_id()).unwrap();
    assert_eq!(
        a_ips,
        vec![(net.uuid.clone(), Ipv4Addr::new(10, 213, 71, 10))]
    );
    let b_ip = env.runtime.app_ips(&b.task_id()).unwrap()[0].1;
    assert!(net.subnet.contains(b_ip), "{b_ip} outside {}", net.subnet);

    let shown = env.sh(&a.task_id(), "ip addr show eth0").await;
    assert!(
        text(&shown.stdout).contains("10.213.71.10/24"),
        "{}",
        text(&shown.stdout)
    );
    assert!(
        text(&shown.stdout).contains("02:00:0a:d5:47:0a"),
        "{}",
        text(&shown.stdout)
    );
    let hosts = env.sh(&a.task_id(), "cat /etc/hosts").await;
    assert!(
        text(&hosts.stdout).contains(&format!("10.213.71.10\t{}", a.uuid)),
        "{}",
        text(&hosts.stdout)
    );

    let ping = env.sh(&b.task_id(), "ping -c1 -W2 10.213.71.10").await;
    assert_eq!(
        ping.exit_status,
        0,
        "b → a: {} {}",
        text(&ping.stdout),
        text(&ping.stderr)
    );
    let ping = env.sh(&a.task_id(), &format!("ping -c1 -W2 {b_ip}")).await;
    assert_eq!(
        ping.exit_status,
        0,
        "a → b: {} {}",
        text(&ping.stdout),
        text(&ping.stderr)
    );

    let during = census(&env, &net, &tasks);
    assert_eq!(during.veths_on_bridge.len(), 2, "{during:#?}");
    assert_eq!(during.netns.len(), 2, "{during:#?}");
    assert_eq!(during.leases.len(), 2, "{during:#?}");

    remove_all(&env, &tasks).await;
    assert_eq!(census(&env, &net, &tasks), empty_census());
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_map_answers_on_host_loopback_and_is_removed_with_the_app() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let net = network(72);
    let _bridge = BridgeGuard::new(&net);
    let host_port: u16 = 28_000 + (std::process::id() % 1000) as u16;
    let mut app = env.app("server", "sh");
    attach(
        &mut app,
        &net,
        serde_json::json!({
            "port_maps": [{ "host_port": host_port, "app_port": 8080 }],
            "bandwidth_kbps": 10_000,
        }),
    );
    let tasks = vec![app.task_id()];
    run(&env, &app, std::slice::from_ref(&net)).await;
    let id = app.task_id();

    // portmap DNATs connections to any host-local address, 127.0.0.1 included
    // (it sets route_localnet and masquerades loopback sources).
    let server = env.sh(&id, "echo hello-from-app | nc -l -p 8080");
    let client = async {
        TestEnv::eventually("mapped port answers", Duration::from_secs(15), || async {
            let got = tokio::task::spawn_blocking(move || {
                let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, host_port)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                let mut text = String::new();
                s.read_to_string(&mut text).ok()?;
                Some(text)
            })
            .await
            .unwrap();
            got.filter(|t| t.contains("hello-from-app"))
        })
        .await
    };
    let (out, answer) = tokio::join!(server, client);
    assert!(answer.contains("hello-from-app"));
    assert_eq!(
        out.exit_status,
        0,
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let rules = census(&env, &net, &tasks).iptables_rules;
    assert!(
        rules
            .iter()
            .any(|r| r.contains(&format!("--dport {host_port}"))),
        "{rules:#?}"
    );

    remove_all(&env, &tasks).await;
    let after = census(&env, &net, &tasks);
    assert_eq!(after, empty_census());
    assert!(!cmd("iptables-save", &["-t", "nat"]).contains(&format!("--dport {host_port} ")));
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_interfaces_keeps_an_isolated_namespace() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let app = env.app("alone", "sh");
    env.run(&app).await;
    let links = env.sh(&app.task_id(), "ip -o link").await;
    assert_eq!(
        text(&links.stdout).lines().count(),
        1,
        "only lo: {}",
        text(&links.stdout)
    );
    assert!(files(&env.layout.netns_dir()).is_empty());
    assert!(env.runtime.app_ips(&app.task_id()).unwrap().is_empty());
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_del_after_a_crash_and_reboot_frees_the_lease_and_the_rules() {
    let env = TestEnv::start().await;
    let net = network(73);
    let _bridge = BridgeGuard::new(&net);
    let host_port: u16 = 29_000 + (std::process::id() % 1000) as u16;
    let mut app = env.app("crashy", "sh");
    attach(
        &mut app,
        &net,
        serde_json::json!({ "port_maps": [{ "host_port": host_port, "app_port": 80 }] }),
    );
    let task = app.task_id();
    let tasks = vec![task.clone()];
    let nets = std::slice::from_ref(&net);
    let rt = &env.runtime;

    // CNI ADD as create_app does it; the agent then "dies" before the container exists.
    let first = outpost_runtime::net::attach_app(&env.layout, rt.cni(), &app, nets)
        .await
        .unwrap()
        .expect("an app with interfaces is attached");
    let ip = rt.app_ips(&task).unwrap()[0].1;
    // A restarted agent attaching again reuses the attachment: same namespace, same IP.
    let again = outpost_runtime::net::attach_app(&env.layout, rt.cni(), &app, nets)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.netns, first.netns);
    assert_eq!(rt.app_ips(&task).unwrap()[0].1, ip);

    // A reboot loses the namespace (and the veth in it), not the lease or the rules.
    nix::mount::umount2(&first.netns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let left = census(&env, &net, &tasks);
    assert_eq!(left.leases.len(), 1, "{left:#?}");
    assert!(!left.iptables_rules.is_empty(), "{left:#?}");

    rt.detach_network(&task).await.unwrap();
    assert_eq!(census(&env, &net, &tasks), empty_census());
    // Repeating the DEL is harmless.
    rt.detach_network(&task).await.unwrap();
    env.teardown().await;
}
