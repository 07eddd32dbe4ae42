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
use outpost_runtime::net::conflist::{bridge_name, network_name};
use outpost_runtime::net::isolation;
use outpost_runtime::Layout;
use outpost_tests::agent::{app_yaml, tail, AgentEnv};
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
    census_at(&env.layout, net, tasks)
}

fn census_at(layout: &Layout, net: &NetworkConfig, tasks: &[String]) -> Census {
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
        leases: files(&layout.net_ipam())
            .into_iter()
            .filter(|f| f.contains(&subnet_prefix))
            .collect(),
        netns: files(&layout.netns_dir()),
        records: files(&layout.net_attachments()),
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

/// Removes what a network instance test made on the host when dropped
/// (bridge, isolation chain), also when the test fails.
struct InstanceGuard {
    bridge: String,
    uuid: String,
}

impl InstanceGuard {
    fn new(net: &NetworkConfig) -> InstanceGuard {
        InstanceGuard {
            bridge: bridge_name(net),
            uuid: net.uuid.clone(),
        }
    }
}

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let chain = isolation::chain_name(&self.bridge);
        let comment = format!("outpost isolated network {}", self.uuid);
        let _ = std::process::Command::new("iptables")
            .args([
                "-w",
                "-D",
                "CNI-ADMIN",
                "-m",
                "comment",
                "--comment",
                &comment,
            ])
            .args(["-j", &chain])
            .output();
        for op in ["-F", "-X"] {
            let _ = std::process::Command::new("iptables")
                .args(["-w", op, &chain])
                .output();
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output();
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The IPv4 addresses on a host link (`10.213.74.1/24`).
fn link_addrs(name: &str) -> Vec<String> {
    cmd("ip", &["-4", "-o", "addr", "show", "dev", name])
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet")?;
            w.next().map(str::to_owned)
        })
        .collect()
}

/// `iptables -S` lines that mention `needle`.
fn filter_rules(needle: &str) -> Vec<String> {
    cmd("iptables", &["-w", "-S"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

async fn ensure(layout: &Layout, net: &NetworkConfig) {
    outpost_runtime::net::ensure_network(layout, net)
        .await
        .unwrap_or_else(|e| panic!("setting up network {}: {e}", net.name));
}

async fn ping(env: &TestEnv, from: &AppConfig, to: Ipv4Addr) -> bool {
    let out = env.sh(&from.task_id(), &format!("ping -c1 -W1 {to}")).await;
    out.exit_status == 0
}

fn static_ip(app: &mut AppConfig, net: &NetworkConfig, ip: &str) {
    attach(app, net, serde_json::json!({ "ip": ip }));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_instance_exists_before_its_apps_and_goes_after_the_last_one() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let mut net = network(74);
    // With NAT: the bridge plugin's masquerade rules must go too.
    net.nat = true;
    let _guard = InstanceGuard::new(&net);
    let bridge = bridge_name(&net);
    let rt = &env.runtime;
    assert!(!link_exists(&bridge));

    // Created before any app: the bridge with the gateway address, owned by this root.
    ensure(&env.layout, &net).await;
    assert!(link_exists(&bridge));
    assert_eq!(link_addrs(&bridge), ["10.213.74.1/24"]);
    let owned = outpost_runtime::net::owned(&env.layout).unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].bridge.as_deref(), Some(bridge.as_str()));
    // Idempotent: nothing to change the second time.
    assert!(!outpost_runtime::net::ensure_network(&env.layout, &net)
        .await
        .unwrap());

    let mut app = env.app("user", "sh");
    attach(&mut app, &net, serde_json::json!({}));
    run(&env, &app, std::slice::from_ref(&net)).await;
    let leases = env.layout.net_ipam().join(network_name(&net));
    assert!(leases.is_dir());
    let during = census(&env, &net, &[app.task_id()]);
    assert!(
        during
            .iptables_rules
            .iter()
            .any(|r| r.contains("MASQUERADE")),
        "{during:#?}"
    );
    let obs = rt.find(&app.task_id()).await.unwrap().unwrap();
    rt.remove_container(&obs).await.unwrap();

    // Another root's network is not this root's to remove, even with the
    // same kind of name and nothing attached.
    let other_root = tempfile::tempdir().unwrap();
    let other_layout = Layout::new(other_root.path());
    let theirs = network(84);
    let _theirs_guard = InstanceGuard::new(&theirs);
    ensure(&other_layout, &theirs).await;
    outpost_runtime::net::remove_network(&env.layout, &theirs.uuid)
        .await
        .unwrap();
    assert!(
        link_exists(&bridge_name(&theirs)),
        "another root's bridge kept"
    );

    // After the last user: bridge, leases directory and record go.
    outpost_runtime::net::remove_network(&env.layout, &net.uuid)
        .await
        .unwrap();
    assert!(!link_exists(&bridge));
    assert!(!leases.exists());
    assert!(outpost_runtime::net::owned(&env.layout).unwrap().is_empty());
    assert_eq!(census(&env, &net, &[app.task_id()]), empty_census());
    // Safe to repeat.
    outpost_runtime::net::remove_network(&env.layout, &net.uuid)
        .await
        .unwrap();

    // Crash safety: a bridge the plugin made for an app whose ADD began
    // (ownership recorded, agent gone before it finished) is still removed.
    let mut late = env.app("late", "sh");
    late.app_num = 2;
    attach(&mut late, &net, serde_json::json!({}));
    outpost_runtime::net::attach_app(&env.layout, rt.cni(), &late, std::slice::from_ref(&net))
        .await
        .unwrap();
    assert!(link_exists(&bridge), "the bridge plugin made the bridge");
    rt.detach_network(&late.task_id()).await.unwrap();
    outpost_runtime::net::remove_network(&env.layout, &net.uuid)
        .await
        .unwrap();
    assert!(!link_exists(&bridge));

    outpost_runtime::net::remove_network(&other_layout, &theirs.uuid)
        .await
        .unwrap();
    assert!(!link_exists(&bridge_name(&theirs)));
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_instance_cannot_reach_or_be_reached_from_other_instances() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let open_a = network(75);
    let mut isolated = network(76);
    isolated.isolated = true;
    let open_c = network(77);
    let nets = [open_a.clone(), isolated.clone(), open_c.clone()];
    let _guards: Vec<InstanceGuard> = nets.iter().map(InstanceGuard::new).collect();
    for n in &nets {
        ensure(&env.layout, n).await;
    }
    let chain = isolation::chain_name(&bridge_name(&isolated));
    assert_eq!(
        filter_rules(&chain).len(),
        // -N, three rules, the jump from CNI-ADMIN
        5,
        "{:#?}",
        filter_rules(&chain)
    );

    let mut a = env.app("a", "sh");
    static_ip(&mut a, &open_a, "10.213.75.10");
    let mut b1 = env.app("b1", "sh");
    b1.app_num = 2;
    static_ip(&mut b1, &isolated, "10.213.76.10");
    let mut b2 = env.app("b2", "sh");
    b2.app_num = 3;
    static_ip(&mut b2, &isolated, "10.213.76.11");
    let mut c = env.app("c", "sh");
    c.app_num = 4;
    static_ip(&mut c, &open_c, "10.213.77.10");
    let apps = [a.clone(), b1.clone(), b2.clone(), c.clone()];
    for app in &apps {
        run(&env, app, &nets).await;
    }
    let (ip_a, ip_b1, ip_b2) = (
        Ipv4Addr::new(10, 213, 75, 10),
        Ipv4Addr::new(10, 213, 76, 10),
        Ipv4Addr::new(10, 213, 76, 11),
    );

    // Two open instances route to each other through the device (the
    // control: the drops below come from isolation, not from routing).
    assert!(ping(&env, &c, ip_a).await, "c → a across open instances");
    // Within the isolated instance apps reach each other.
    assert!(
        ping(&env, &b1, ip_b2).await,
        "b1 → b2 on the isolated instance"
    );
    assert!(
        ping(&env, &b2, ip_b1).await,
        "b2 → b1 on the isolated instance"
    );
    // Across its border, in neither direction.
    assert!(!ping(&env, &b1, ip_a).await, "b1 (isolated) → a must fail");
    assert!(!ping(&env, &a, ip_b1).await, "a → b1 (isolated) must fail");
    assert!(!ping(&env, &c, ip_b2).await, "c → b2 (isolated) must fail");
    let tcp = env
        .sh(&a.task_id(), "echo x | nc -w 2 10.213.76.10 80; echo rc=$?")
        .await;
    assert!(
        !text(&tcp.stdout).contains("rc=0"),
        "TCP into the isolated instance: {}",
        text(&tcp.stdout)
    );

    // Turning isolation off removes the chain and opens the border.
    let mut opened = isolated.clone();
    opened.isolated = false;
    ensure(&env.layout, &opened).await;
    assert!(
        filter_rules(&chain).is_empty(),
        "{:#?}",
        filter_rules(&chain)
    );
    assert!(ping(&env, &b1, ip_a).await, "b1 → a once not isolated");
    // And on again.
    ensure(&env.layout, &isolated).await;
    assert!(!ping(&env, &b1, ip_a).await, "b1 → a isolated again");

    let tasks: Vec<String> = apps.iter().map(AppConfig::task_id).collect();
    remove_all(&env, &tasks).await;
    for n in &nets {
        outpost_runtime::net::remove_network(&env.layout, &n.uuid)
            .await
            .unwrap();
        assert!(!link_exists(&bridge_name(n)));
        assert_eq!(census(&env, n, &tasks), empty_census());
    }
    assert!(
        filter_rules(&chain).is_empty(),
        "{:#?}",
        filter_rules(&chain)
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gvisor_app_uses_its_namespace_and_talks_to_a_runc_app() {
    assert!(
        outpost_runtime::runsc::find_runsc().is_some(),
        "runsc (gVisor) is not installed; scripts/install-deps.sh installs it"
    );
    let env = TestEnv::start().await;
    env.import("sh").await;
    let net = network(78);
    let _guard = InstanceGuard::new(&net);
    ensure(&env.layout, &net).await;
    let mut server = env.app("runc-server", "sh");
    static_ip(&mut server, &net, "10.213.78.10");
    let mut sandboxed = env.app("gvisor-client", "sh");
    sandboxed.app_num = 2;
    sandboxed.runtime = outpost_api::RuntimeClass::Runsc;
    static_ip(&mut sandboxed, &net, "10.213.78.11");
    let mut offline = env.app("gvisor-offline", "sh");
    offline.app_num = 3;
    offline.runtime = outpost_api::RuntimeClass::Runsc;
    let nets = std::slice::from_ref(&net);
    for app in [&server, &sandboxed, &offline] {
        run(&env, app, nets).await;
    }
    let (g, s) = (sandboxed.task_id(), server.task_id());
    let dmesg = env.sh(&g, "dmesg").await;
    assert!(
        text(&dmesg.stdout).contains("gVisor"),
        "{}",
        text(&dmesg.stdout)
    );
    let addrs = env.sh(&g, "ip addr").await;
    assert!(
        text(&addrs.stdout).contains("10.213.78.11"),
        "gVisor sees its interface (mode {}): {}",
        outpost_runtime::runsc::netns_network_mode(),
        text(&addrs.stdout)
    );

    // gVisor → runc, and runc → gVisor.
    tcp_message(&env, &g, &s, "10.213.78.10", 8080, "hello-from-gvisor").await;
    tcp_message(&env, &s, &g, "10.213.78.11", 8081, "hello-from-runc").await;

    // A gVisor app without interfaces keeps --network=none: loopback only.
    let links = env.sh(&offline.task_id(), "ip -o link").await;
    assert_eq!(
        text(&links.stdout).lines().count(),
        1,
        "only lo: {}",
        text(&links.stdout)
    );

    let tasks: Vec<String> = [&server, &sandboxed, &offline]
        .iter()
        .map(|a| a.task_id())
        .collect();
    remove_all(&env, &tasks).await;
    outpost_runtime::net::remove_network(&env.layout, &net.uuid)
        .await
        .unwrap();
    assert_eq!(census(&env, &net, &tasks), empty_census());
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_reboot_makes_the_interfaces_again_from_the_record() {
    let env = TestEnv::start().await;
    env.import("sh").await;
    let net = network(79);
    let _guard = InstanceGuard::new(&net);
    ensure(&env.layout, &net).await;
    let mut app = env.app("rebooted", "sh");
    static_ip(&mut app, &net, "10.213.79.10");
    let mut peer = env.app("peer", "sh");
    peer.app_num = 2;
    static_ip(&mut peer, &net, "10.213.79.11");
    for a in [&app, &peer] {
        run(&env, a, std::slice::from_ref(&net)).await;
    }
    let id = app.task_id();
    let rt = &env.runtime;
    // "Reboot": the task and its namespace are gone, container and record stay.
    let obs = rt.find(&id).await.unwrap().unwrap();
    rt.stop(&obs).await.unwrap();
    outpost_runtime::task::delete_task(env.client(), &id)
        .await
        .unwrap();
    let ns = env.layout.netns_dir().join(&id);
    nix::mount::umount2(&ns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    std::fs::remove_dir_all(env.layout.net_run().join(&id)).unwrap();

    // What the agent's Restart does: interfaces from the record, then the task.
    outpost_runtime::net::reattach(&env.layout, rt.cni(), &id)
        .await
        .unwrap()
        .expect("an attached task");
    let obs = rt.find(&id).await.unwrap().unwrap();
    rt.restart_task(&obs, &env.io(&id)).await.unwrap();
    assert!(ping(&env, &app, Ipv4Addr::new(10, 213, 79, 11)).await);
    let hosts = env.sh(&id, "cat /etc/hosts").await;
    assert!(
        text(&hosts.stdout).contains(&format!("10.213.79.10\t{}", app.uuid)),
        "{}",
        text(&hosts.stdout)
    );
    let during = census(&env, &net, std::slice::from_ref(&id));
    assert_eq!(during.leases.len(), 2, "{during:#?}");
    assert_eq!(during.veths_on_bridge.len(), 2, "{during:#?}");

    let tasks = vec![id, peer.task_id()];
    remove_all(&env, &tasks).await;
    outpost_runtime::net::remove_network(&env.layout, &net.uuid)
        .await
        .unwrap();
    assert_eq!(census(&env, &net, &tasks), empty_census());
    env.teardown().await;
}

/// A network config entry for an agent test.
fn net_yaml(uuid: &str, name: &str, third_octet: u8, isolated: bool) -> String {
    format!(
        "  - {{ uuid: {uuid}, name: {name}, kind: local, subnet: 10.213.{third_octet}.0/24, nat: false, isolated: {isolated} }}\n"
    )
}

/// A network UUID of this agent env whose bridge name is unique to it
/// (`n` varies the first 8 hex digits).
fn env_net(env: &AgentEnv, n: u32) -> (String, String) {
    let prefix = format!("{:08x}", env.salt ^ n);
    (
        format!("{prefix}-0000-4000-8000-0000000000aa"),
        format!("op-{prefix}"),
    )
}

fn agent_config(gen: u64, nets: &[String], apps: &[String]) -> String {
    format!(
        "generation: {gen}\nnetworks:\n{}apps:\n{}",
        if nets.is_empty() {
            "  []\n".to_owned()
        } else {
            nets.concat()
        },
        if apps.is_empty() {
            "  []\n".to_owned()
        } else {
            apps.concat()
        }
    )
    .replace("networks:\n  []\n", "networks: []\n")
    .replace("apps:\n  []\n", "apps: []\n")
}

fn as_net(uuid: &str, third_octet: u8) -> NetworkConfig {
    serde_json::from_value(serde_json::json!({
        "uuid": uuid, "name": "x", "subnet": format!("10.213.{third_octet}.0/24"),
    }))
    .unwrap()
}

fn wait_until(what: &str, env: &AgentEnv, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + AGENT_T;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; agent log tail:\n{}",
            tail(&env.agent_log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const AGENT_T: Duration = Duration::from_secs(40);

fn ip_of(env: &AgentEnv, name: &str) -> Option<String> {
    let d = env.app(name)?.domain?;
    d.ips
        .first()
        .and_then(|i| i.split_once('=').map(|(_, ip)| ip.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_creates_networks_first_applies_interface_changes_at_restart_and_removes_unused_networks(
) {
    let mut env = AgentEnv::new();
    let (lan, lan_bridge) = env_net(&env, 0);
    let (quiet, quiet_bridge) = env_net(&env, 1);
    let _guards = [
        InstanceGuard::new(&as_net(&lan, 81)),
        InstanceGuard::new(&as_net(&quiet, 82)),
    ];
    let nets = [
        net_yaml(&lan, "lan", 81, false),
        net_yaml(&quiet, "quiet", 82, true),
    ];
    let web = env.uuid(1);
    let app = |ip: &str, restart: u32| {
        app_yaml(
            &web,
            "web",
            1,
            "sh",
            &format!(
                "    restart_counter: {restart}\n    interfaces: [{{ network: {lan}, ip: {ip} }}]\n"
            ),
        )
    };
    env.write_config(&agent_config(1, &nets, &[app("10.213.81.10", 0)]));
    env.start_agent();
    env.wait_running(&["web"], AGENT_T);
    assert_eq!(ip_of(&env, "web").as_deref(), Some("10.213.81.10"));
    // A configured network exists even without apps; an isolated one has its chain.
    assert!(link_exists(&quiet_bridge) && link_exists(&lan_bridge));
    let quiet_chain = isolation::chain_name(&quiet_bridge);
    assert_eq!(filter_rules(&quiet_chain).len(), 5);

    // An interface change alone waits for the next restart, as a notice.
    env.write_config(&agent_config(2, &nets, &[app("10.213.81.20", 0)]));
    let l = env.wait_for("pending interface notice", AGENT_T, |l| {
        l.iter().any(|a| {
            a.error
                .as_ref()
                .is_some_and(|e| e.message.contains("interfaces (eth0) changed"))
        })
    });
    let err = l[0].error.clone().unwrap();
    assert_eq!(err.severity, outpost_api::Severity::Notice);
    assert_eq!(l[0].state, outpost_api::SwState::Running);
    assert_eq!(ip_of(&env, "web").as_deref(), Some("10.213.81.10"));
    // The restart counter applies it.
    env.write_config(&agent_config(3, &nets, &[app("10.213.81.20", 1)]));
    env.wait_for("new address after the restart", AGENT_T, |l| {
        l.iter().any(|a| {
            a.state == outpost_api::SwState::Running
                && a.error.is_none()
                && a.domain
                    .as_ref()
                    .is_some_and(|d| d.ips.iter().any(|i| i.ends_with("=10.213.81.20")))
        })
    });

    // A network that leaves the config goes (nothing uses it).
    env.write_config(&agent_config(4, &nets[..1], &[app("10.213.81.20", 1)]));
    wait_until("the quiet network to go", &env, || {
        outpost_runtime::net::owned(&env.layout).unwrap().len() == 1
    });
    assert!(!link_exists(&quiet_bridge));
    assert!(filter_rules(&quiet_chain).is_empty());
    assert!(link_exists(&lan_bridge), "still used and configured");

    // The last one goes after its last app.
    env.write_config(&agent_config(5, &[], &[]));
    wait_until("the lan network to go", &env, || {
        outpost_runtime::net::owned(&env.layout).unwrap().is_empty()
    });
    assert!(!link_exists(&lan_bridge));
    let task = format!("{}.1.1", env.uuid(1));
    assert_eq!(
        census_at(&env.layout, &as_net(&lan, 81), &[task]),
        empty_census()
    );
    env.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_cni_add_and_task_start_converges_without_leaks() {
    let mut env = AgentEnv::new();
    let (lan, bridge) = env_net(&env, 0);
    let net = as_net(&lan, 83);
    let _guard = InstanceGuard::new(&net);
    let nets = [net_yaml(&lan, "lan", 83, false)];
    let itf = format!(
        "    interfaces: [{{ network: {lan}, port_maps: [{{ host_port: {}, app_port: 80 }}] }}]\n",
        30_000 + std::process::id() % 1000
    );
    let one = app_yaml(&env.uuid(1), "one", 1, "sh", &itf);
    let armed = outpost_runtime::net::failpoint::armed_path(
        &env.layout,
        outpost_runtime::net::failpoint::AFTER_CNI_ADD,
    );
    let arm = || {
        std::fs::create_dir_all(armed.parent().unwrap()).unwrap();
        std::fs::write(&armed, b"").unwrap();
    };
    let killed = |env: &mut AgentEnv| {
        let child = env.agent.as_mut().expect("agent started");
        let deadline = std::time::Instant::now() + AGENT_T;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the failpoint did not fire; log:\n{}",
                tail(&env.agent_log(), 30)
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        env.agent = None;
    };
    let task_one = format!("{}.1.1", env.uuid(1));

    // 1. Killed right after ADD of app "one": the attachment exists, no container.
    arm();
    env.write_config(&agent_config(1, &nets, std::slice::from_ref(&one)));
    env.start_agent();
    killed(&mut env);
    let rec = outpost_runtime::net::read_record(&env.layout, &task_one)
        .unwrap()
        .expect("recorded before the crash");
    let ip_before = rec.interfaces[0].ips()[0];
    let rt = env.runtime().await;
    assert!(
        rt.find(&task_one).await.unwrap().is_none(),
        "no container yet"
    );
    // Restarted: converges, reusing the attachment (same address, one lease).
    env.start_agent();
    env.wait_running(&["one"], AGENT_T);
    assert_eq!(
        ip_of(&env, "one"),
        Some(ip_before.to_string()),
        "the lease made before the crash is reused"
    );
    let c = census_at(&env.layout, &net, std::slice::from_ref(&task_one));
    assert_eq!(
        (
            c.leases.len(),
            c.veths_on_bridge.len(),
            c.netns.len(),
            c.records.len()
        ),
        (1, 1, 1, 1),
        "{c:#?}"
    );

    // 2. Killed after ADD of a second app, which then leaves the config
    // while the agent is down. The restarted agent starts from its
    // checkpoint (which still has the app) and then reads the file: nothing
    // of the second app may remain either way.
    let two = app_yaml(
        &env.uuid(2),
        "two",
        2,
        "sh",
        &format!("    interfaces: [{{ network: {lan} }}]\n"),
    );
    let task_two = format!("{}.1.2", env.uuid(2));
    arm();
    env.write_config(&agent_config(2, &nets, &[one.clone(), two]));
    killed(&mut env);
    assert!(outpost_runtime::net::read_record(&env.layout, &task_two)
        .unwrap()
        .is_some());
    env.write_config(&agent_config(3, &nets, std::slice::from_ref(&one)));
    env.start_agent();
    wait_until("the second app's attachment to be freed", &env, || {
        outpost_runtime::net::read_record(&env.layout, &task_two)
            .unwrap()
            .is_none()
    });
    env.wait_for("only app one", AGENT_T, |l| {
        l.len() == 1 && l[0].display_name == "one" && l[0].state == outpost_api::SwState::Running
    });
    let c = census_at(&env.layout, &net, &[task_one.clone(), task_two.clone()]);
    assert_eq!(
        (
            c.leases.len(),
            c.veths_on_bridge.len(),
            c.netns.len(),
            c.records.len()
        ),
        (1, 1, 1, 1),
        "{c:#?}"
    );
    assert!(
        !c.iptables_rules.iter().any(|r| r.contains(&task_two)),
        "{c:#?}"
    );

    // 3. An attachment whose task no config knows and no container has
    // (a crash after ADD, and the app gone before the restarted agent's
    // first pass) is an orphan: the next pass DELs it.
    env.kill_agent();
    let mut ghost: AppConfig = serde_json::from_str(&format!(
        r#"{{"uuid": "{}", "version": "1", "display_name": "ghost", "app_num": 9, "image": "sh:latest"}}"#,
        env.uuid(9)
    ))
    .unwrap();
    attach(&mut ghost, &net, serde_json::json!({}));
    outpost_runtime::net::attach_app(
        &env.layout,
        &outpost_runtime::net::Cni::default(),
        &ghost,
        std::slice::from_ref(&net),
    )
    .await
    .unwrap();
    let task_ghost = ghost.task_id();
    assert_eq!(
        census_at(&env.layout, &net, std::slice::from_ref(&task_ghost))
            .leases
            .len(),
        2
    );
    env.start_agent();
    wait_until("the orphaned attachment to be freed", &env, || {
        outpost_runtime::net::read_record(&env.layout, &task_ghost)
            .unwrap()
            .is_none()
    });
    let tasks = [task_one.clone(), task_two.clone(), task_ghost.clone()];
    let c = census_at(&env.layout, &net, &tasks);
    assert_eq!(
        (
            c.leases.len(),
            c.veths_on_bridge.len(),
            c.netns.len(),
            c.records.len()
        ),
        (1, 1, 1, 1),
        "{c:#?}"
    );
    assert!(
        !c.iptables_rules.iter().any(|r| r.contains(&task_ghost)),
        "{c:#?}"
    );
    assert!(env
        .agent_log()
        .contains("freed the network attachment of a task that is gone"));

    // 4. Everything goes: apps, attachments, leases, rules, namespaces, bridge.
    env.write_config(&agent_config(4, &[], &[]));
    wait_until("the network to go", &env, || {
        outpost_runtime::net::owned(&env.layout).unwrap().is_empty()
    });
    assert!(!link_exists(&bridge));
    assert_eq!(census_at(&env.layout, &net, &tasks), empty_census());
    env.teardown().await;
}

/// `from` sends `msg` over TCP to `to`, listening on `ip:port`; asserts it arrived.
async fn tcp_message(env: &TestEnv, from: &str, to: &str, ip: &str, port: u16, msg: &str) {
    let listen_cmd = format!("nc -l -p {port}");
    let listen = env.sh(to, &listen_cmd);
    let connect = async {
        TestEnv::eventually("the sender connects", Duration::from_secs(20), || async {
            let out = env
                .sh(from, &format!("echo {msg} | nc -w 2 {ip} {port}"))
                .await;
            (out.exit_status == 0).then_some(())
        })
        .await
    };
    let (heard, ()) = tokio::join!(listen, connect);
    assert!(
        text(&heard.stdout).contains(msg),
        "{} {}",
        text(&heard.stdout),
        text(&heard.stderr)
    );
}
