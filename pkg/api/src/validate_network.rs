//! Validation of network instances and of the apps' interfaces on them.
//!
//! Problems on a network carry a `networks[i]` path; problems on an app's
//! interface carry an `apps[i].interfaces[j]` path, so the app is rejected
//! on its own. Clashes between two objects are reported on the later one.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use crate::config::DeviceConfig;
use crate::network::{NetworkConfig, NetworkKind};
use crate::problem::{is_uuid, Problem};

/// Longest host interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Appends every network and interface problem of `config` to `out`.
pub fn validate_networks(config: &DeviceConfig, out: &mut Vec<Problem>) {
    let mut by_uuid: BTreeMap<&str, (usize, &NetworkConfig)> = BTreeMap::new();
    for (i, net) in config.networks.iter().enumerate() {
        let p = format!("networks[{i}]");
        validate_network(net, &p, out);
        if let Some(&(first, _)) = by_uuid.get(net.uuid.as_str()) {
            out.push(Problem::new(
                format!("{p}.uuid"),
                format!("duplicate of networks[{first}].uuid"),
            ));
        } else {
            by_uuid.insert(&net.uuid, (i, net));
        }
        // Local instances are bridges named after the UUID's first 8 hex digits.
        if net.kind == NetworkKind::Local && is_uuid(&net.uuid) {
            let prefix = bridge_prefix(&net.uuid);
            let clash = config.networks[..i].iter().position(|o| {
                o.kind == NetworkKind::Local
                    && o.uuid != net.uuid
                    && bridge_prefix(&o.uuid) == prefix
            });
            if let Some(j) = clash {
                out.push(Problem::new(
                    format!("{p}.uuid"),
                    format!(
                        "starts with the same 8 hex digits as networks[{j}].uuid, so both would use bridge op-{prefix}; choose another UUID"
                    ),
                ));
            }
        }
        for (j, other) in config.networks[..i].iter().enumerate() {
            if net.subnet.overlaps(&other.subnet) {
                out.push(Problem::new(
                    format!("{p}.subnet"),
                    format!("overlaps networks[{j}] ({})", other.subnet),
                ));
                break;
            }
        }
    }

    // (ip, network) and (host_port, protocol) -> first user's path.
    let mut ips: HashMap<(Ipv4Addr, &str), String> = HashMap::new();
    let mut ports: HashMap<(u16, &str), String> = HashMap::new();
    for (a, app) in config.apps.iter().enumerate() {
        // Over the limit (reported by validate_size): no per-interface
        // checks, whose pairwise comparisons grow with the square.
        if app.interfaces.len() > crate::validate_size::MAX_INTERFACES {
            continue;
        }
        for (j, itf) in app.interfaces.iter().enumerate() {
            let p = format!("apps[{a}].interfaces[{j}]");
            let net = by_uuid.get(itf.network.as_str()).map(|(_, n)| *n);
            match net {
                None => out.push(Problem::new(
                    format!("{p}.network"),
                    format!("no network {}", itf.network),
                )),
                Some(net) => {
                    if app.interfaces[..j].iter().any(|o| o.network == itf.network) {
                        out.push(Problem::new(
                            format!("{p}.network"),
                            format!("the app already has an interface on network {}", net.name),
                        ));
                    }
                    if let Some(ip) = itf.ip {
                        check_host_ip(net, ip, &format!("{p}.ip"), out);
                        if let Some(first) = ips.get(&(ip, net.uuid.as_str())) {
                            out.push(Problem::new(
                                format!("{p}.ip"),
                                format!("{ip} is already used by {first}"),
                            ));
                        } else {
                            ips.insert((ip, &net.uuid), p.clone());
                        }
                    }
                }
            }
            if let Some(mac) = &itf.mac {
                if let Err(e) = check_mac(mac) {
                    out.push(Problem::new(format!("{p}.mac"), e));
                }
            }
            if itf.bandwidth_kbps == Some(0) {
                out.push(Problem::new(
                    format!("{p}.bandwidth_kbps"),
                    "must be at least 1 (omit it for no limit)",
                ));
            }
            for (k, pm) in itf.port_maps.iter().enumerate() {
                let pp = format!("{p}.port_maps[{k}]");
                if pm.host_port == 0 || pm.app_port == 0 {
                    out.push(Problem::new(pp.clone(), "ports must be 1 to 65535"));
                    continue;
                }
                let key = (pm.host_port, pm.protocol.as_str());
                if let Some(first) = ports.get(&key) {
                    out.push(Problem::new(
                        pp,
                        format!(
                            "host port {}/{} is already mapped by {first}",
                            pm.host_port,
                            pm.protocol.as_str()
                        ),
                    ));
                } else {
                    ports.insert(key, pp);
                }
            }
        }
    }
}

fn validate_network(net: &NetworkConfig, p: &str, out: &mut Vec<Problem>) {
    let mut err = |field: &str, msg: String| out.push(Problem::new(format!("{p}.{field}"), msg));
    if !is_uuid(&net.uuid) {
        err("uuid", format!("{:?} is not a UUID", net.uuid));
    }
    if net.name.trim().is_empty() || net.name.len() > 64 || net.name.chars().any(char::is_control) {
        err("name", "must be 1 to 64 printable characters".into());
    }
    let s = net.subnet;
    if s.addr() != s.network() {
        err(
            "subnet",
            format!(
                "{s} has host bits set (the network is {}/{})",
                s.network(),
                s.prefix()
            ),
        );
    }
    if s.prefix() < 8 || s.prefix() > 30 {
        err(
            "subnet",
            format!("{s}: the prefix must be /8 to /30 (got /{})", s.prefix()),
        );
    }
    if let Some(gw) = net.gateway {
        let mut gw_out = Vec::new();
        check_host_ip(net, gw, &format!("{p}.gateway"), &mut gw_out);
        // check_host_ip also refuses the gateway itself; only keep the range problems.
        out.extend(
            gw_out
                .into_iter()
                .filter(|g| !g.message.contains("gateway")),
        );
    }
    match (net.kind, &net.host_interface) {
        (NetworkKind::Switch, None) => out.push(Problem::new(
            format!("{p}.host_interface"),
            "a switch network needs the host interface it bridges to",
        )),
        (NetworkKind::Local, Some(_)) => out.push(Problem::new(
            format!("{p}.host_interface"),
            "only a switch network has a host interface (remove it or set kind: switch)",
        )),
        (_, Some(name))
            if name.is_empty()
                || name.len() > MAX_IFNAME
                || name.contains(['/', ' ', '\0', ':']) =>
        {
            out.push(Problem::new(
                format!("{p}.host_interface"),
                format!("{name:?} is not an interface name (1 to {MAX_IFNAME} characters, no '/', ':' or space)"),
            ));
        }
        _ => {}
    }
}

/// The first 8 hex digits of a UUID (what names a local instance's bridge).
fn bridge_prefix(uuid: &str) -> String {
    uuid.chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `ip` must be a usable host address of `net` other than its gateway.
fn check_host_ip(net: &NetworkConfig, ip: Ipv4Addr, path: &str, out: &mut Vec<Problem>) {
    let s = net.subnet;
    let msg = if !s.contains(ip) {
        format!("{ip} is outside network {} ({s})", net.name)
    } else if ip == s.network() || ip == s.broadcast() {
        format!("{ip} is the network or broadcast address of {s}")
    } else if ip == net.gateway_addr() {
        format!("{ip} is the gateway of network {}", net.name)
    } else {
        return;
    };
    out.push(Problem::new(path, msg));
}

fn check_mac(mac: &str) -> Result<(), String> {
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("{mac:?} is not a MAC address (02:00:00:00:00:01)"));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(0);
    if first & 1 == 1 {
        return Err(format!(
            "{mac} is a multicast address (the first octet must be even)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::config::DeviceConfig;
    use crate::validate::validate;

    const N0: &str = "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c10";
    const N1: &str = "1b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c11";

    fn config(networks: serde_json::Value, interfaces: Vec<serde_json::Value>) -> DeviceConfig {
        let apps: Vec<serde_json::Value> = interfaces
            .into_iter()
            .enumerate()
            .map(|(n, itfs)| {
                json!({
                    "uuid": format!("6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a1{n}"),
                    "version": "1",
                    "display_name": format!("app{n}"),
                    "app_num": n + 1,
                    "image": "hello:latest",
                    "interfaces": itfs,
                })
            })
            .collect();
        serde_json::from_value(json!({ "generation": 1, "networks": networks, "apps": apps }))
            .unwrap()
    }

    fn lan(uuid: &str, subnet: &str) -> serde_json::Value {
        json!({ "uuid": uuid, "name": "lan", "subnet": subnet })
    }

    fn problems(c: &DeviceConfig) -> Vec<String> {
        validate(c).into_iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_good_network_config_has_no_problems() {
        let c = config(
            json!([lan(N0, "10.1.0.0/24"), lan(N1, "10.2.0.0/24")]),
            vec![
                json!([{ "network": N0, "ip": "10.1.0.5", "mac": "02:00:00:00:00:05",
                         "port_maps": [{ "host_port": 8080, "app_port": 80 }] }]),
                json!([{ "network": N0, "port_maps": [{ "host_port": 8080, "app_port": 80, "protocol": "udp" }] },
                       { "network": N1 }]),
            ],
        );
        assert_eq!(problems(&c), Vec::<String>::new());
    }

    #[test]
    fn parsing_refuses_a_bad_network_and_rejects_only_the_app_with_a_bad_interface() {
        let doc = format!(
            "generation: 1\nnetworks:\n  - {{ uuid: {N0}, name: lan, subnet: 10.1.0.0/24 }}\n  - {{ uuid: {N1}, name: wan, subnet: 10.1.0.0/16 }}\n"
        );
        let e = crate::parse_device_config(&doc).unwrap_err().to_string();
        assert!(
            e.contains("networks[1].subnet: overlaps networks[0]"),
            "{e}"
        );
        let doc = format!(
            "generation: 1\nnetworks: [{{ uuid: {N0}, name: lan, subnet: 10.1.0.0/24 }}]\napps:\n  - {{ uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a10, version: '1', display_name: a, app_num: 1, image: x, interfaces: [{{ network: {N1} }}] }}\n  - {{ uuid: 6f1c2a4e-9b7d-4c1e-8a52-0d3f5e7b9a11, version: '1', display_name: b, app_num: 2, image: x, interfaces: [{{ network: {N0}, ip: 10.1.0.9 }}] }}\n"
        );
        let parsed = crate::parse_device_config(&doc).unwrap();
        assert_eq!(parsed.config.apps.len(), 1);
        assert_eq!(parsed.config.apps[0].display_name, "b");
        assert_eq!(
            parsed.rejected[0].problems[0].to_string(),
            format!("apps[0].interfaces[0].network: no network {N1}")
        );
    }

    #[test]
    fn each_problem_names_its_object() {
        let cases: Vec<(DeviceConfig, &str)> = vec![
            (
                config(json!([lan(N0, "10.1.0.0/24"), lan(N1, "10.1.0.0/16")]), vec![]),
                "networks[1].subnet: overlaps networks[0] (10.1.0.0/24)",
            ),
            (
                config(json!([lan(N0, "10.1.0.7/24")]), vec![]),
                "networks[0].subnet: 10.1.0.7/24 has host bits set (the network is 10.1.0.0/24)",
            ),
            (
                config(json!([lan(N0, "10.0.0.0/31")]), vec![]),
                "networks[0].subnet: 10.0.0.0/31: the prefix must be /8 to /30 (got /31)",
            ),
            (
                config(
                    json!([{ "uuid": N0, "name": "lan", "subnet": "10.1.0.0/24", "gateway": "10.9.0.1" }]),
                    vec![],
                ),
                "networks[0].gateway: 10.9.0.1 is outside network lan (10.1.0.0/24)",
            ),
            (
                config(json!([{ "uuid": N0, "name": "up", "kind": "switch", "subnet": "10.1.0.0/24" }]), vec![]),
                "networks[0].host_interface: a switch network needs the host interface it bridges to",
            ),
            (
                config(json!([{ "uuid": N0, "name": "lan", "subnet": "10.1.0.0/24", "host_interface": "eth0" }]), vec![]),
                "networks[0].host_interface: only a switch network has a host interface",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24"), lan(N0, "10.2.0.0/24")]), vec![]),
                "networks[1].uuid: duplicate of networks[0].uuid",
            ),
            (
                config(
                    json!([lan(N0, "10.1.0.0/24"), lan("0B8E6C2A-0000-4000-8000-000000000000", "10.2.0.0/24")]),
                    vec![],
                ),
                "networks[1].uuid: starts with the same 8 hex digits as networks[0].uuid, so both would use bridge op-0b8e6c2a",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N1 }])]),
                "apps[0].interfaces[0].network: no network 1b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c11",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "ip": "10.2.0.5" }])]),
                "apps[0].interfaces[0].ip: 10.2.0.5 is outside network lan (10.1.0.0/24)",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "ip": "10.1.0.1" }])]),
                "apps[0].interfaces[0].ip: 10.1.0.1 is the gateway of network lan",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "ip": "10.1.0.255" }])]),
                "apps[0].interfaces[0].ip: 10.1.0.255 is the network or broadcast address",
            ),
            (
                config(
                    json!([lan(N0, "10.1.0.0/24")]),
                    vec![json!([{ "network": N0, "ip": "10.1.0.9" }]), json!([{ "network": N0, "ip": "10.1.0.9" }])],
                ),
                "apps[1].interfaces[0].ip: 10.1.0.9 is already used by apps[0].interfaces[0]",
            ),
            (
                config(
                    json!([lan(N0, "10.1.0.0/24"), lan(N1, "10.2.0.0/24")]),
                    vec![
                        json!([{ "network": N0, "port_maps": [{ "host_port": 8080, "app_port": 80 }] }]),
                        json!([{ "network": N1, "port_maps": [{ "host_port": 8080, "app_port": 81 }] }]),
                    ],
                ),
                "apps[1].interfaces[0].port_maps[0]: host port 8080/tcp is already mapped by apps[0].interfaces[0].port_maps[0]",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "port_maps": [{ "host_port": 0, "app_port": 80 }] }])]),
                "apps[0].interfaces[0].port_maps[0]: ports must be 1 to 65535",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "mac": "01:00:00:00:00:01" }])]),
                "apps[0].interfaces[0].mac: 01:00:00:00:00:01 is a multicast address",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "mac": "nope" }])]),
                "apps[0].interfaces[0].mac: \"nope\" is not a MAC address",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0, "bandwidth_kbps": 0 }])]),
                "apps[0].interfaces[0].bandwidth_kbps: must be at least 1",
            ),
            (
                config(json!([lan(N0, "10.1.0.0/24")]), vec![json!([{ "network": N0 }, { "network": N0 }])]),
                "apps[0].interfaces[1].network: the app already has an interface on network lan",
            ),
        ];
        for (c, want) in cases {
            let got = problems(&c);
            assert_eq!(got.len(), 1, "want only {want:?}, got {got:#?}");
            assert!(got[0].starts_with(want), "want {want:?}, got {got:#?}");
        }
    }
}
