//! The CNI network configuration list of one app interface.
//!
//! A `local` network is a Linux bridge `op-<first 8 hex of the network UUID>`
//! with the gateway address on it (`isGateway`), masquerading when `nat` is
//! on; a `switch` network is a macvlan (bridge mode) on the host interface.
//! Both get addresses from host-local, whose leases live in `data_dir`.
//! Port maps add `portmap` (DNAT on the host's addresses, including
//! 127.0.0.1 through its `snat` + `route_localnet` handling), every interface
//! gets `firewall` (lets the traffic through FORWARD), and a bandwidth limit
//! adds `bandwidth`.

use std::path::Path;

use outpost_api::{AppInterface, NetworkConfig, NetworkKind};
use serde_json::{json, Value};

use super::cni::CNI_VERSION;

/// Name of the host bridge of a local network (at most 15 bytes).
pub fn bridge_name(network: &NetworkConfig) -> String {
    let hex: String = network
        .uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    format!("op-{hex}")
}

/// CNI network name of a network instance (also host-local's lease directory).
pub fn network_name(network: &NetworkConfig) -> String {
    format!("outpost-{}", network.uuid)
}

/// The conflist for `itf` on `network`, leases under `data_dir`.
pub fn conflist(network: &NetworkConfig, itf: &AppInterface, data_dir: &Path) -> Value {
    let gateway = network.gateway_addr().to_string();
    let ipam = json!({
        "type": "host-local",
        "ranges": [[{ "subnet": network.subnet.to_string(), "gateway": gateway }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": data_dir,
    });
    let main = match network.kind {
        NetworkKind::Local => json!({
            "type": "bridge",
            "bridge": bridge_name(network),
            "isGateway": true,
            "ipMasq": network.nat,
            "hairpinMode": true,
            "ipam": ipam,
        }),
        NetworkKind::Switch => json!({
            "type": "macvlan",
            "master": network.host_interface.clone().unwrap_or_default(),
            "mode": "bridge",
            "ipam": ipam,
        }),
    };
    let mut plugins = vec![main];
    if !itf.port_maps.is_empty() {
        let maps: Vec<Value> = itf
            .port_maps
            .iter()
            .map(|p| {
                json!({
                    "hostPort": p.host_port,
                    "containerPort": p.app_port,
                    "protocol": p.protocol.as_str(),
                })
            })
            .collect();
        plugins.push(json!({
            "type": "portmap",
            "capabilities": { "portMappings": true },
            "snat": true,
            "runtimeConfig": { "portMappings": maps },
        }));
    }
    plugins.push(json!({ "type": "firewall", "backend": "iptables" }));
    if let Some(kbps) = itf.bandwidth_kbps {
        let rate = kbps.saturating_mul(1000);
        // 100 ms worth of traffic as burst, at least one MTU-sized packet.
        let burst = (rate / 10).max(12_000);
        plugins.push(json!({
            "type": "bandwidth",
            "capabilities": { "bandwidth": true },
            "runtimeConfig": { "bandwidth": {
                "ingressRate": rate, "ingressBurst": burst,
                "egressRate": rate, "egressBurst": burst,
            }},
        }));
    }
    json!({
        "cniVersion": CNI_VERSION,
        "name": network_name(network),
        "plugins": plugins,
    })
}

/// `CNI_ARGS` carrying a static IP (host-local) and MAC (bridge).
pub fn cni_args(itf: &AppInterface) -> String {
    let mut args = vec!["IgnoreUnknown=1".to_owned()];
    if let Some(ip) = itf.ip {
        args.push(format!("IP={ip}"));
    }
    if let Some(mac) = &itf.mac {
        args.push(format!("MAC={mac}"));
    }
    args.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(kind: &str) -> NetworkConfig {
        serde_json::from_value(json!({
            "uuid": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e", "name": "lan", "kind": kind,
            "subnet": "10.1.0.0/24", "nat": false,
            "host_interface": if kind == "switch" { json!("eth1") } else { Value::Null },
        }))
        .unwrap()
    }

    fn itf(extra: Value) -> AppInterface {
        let mut v = json!({ "network": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e" });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn local_network_is_a_bridge_with_host_local() {
        let l = conflist(&net("local"), &itf(json!({})), Path::new("/p/ipam"));
        assert_eq!(l["cniVersion"], "1.0.0");
        assert_eq!(l["name"], "outpost-0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e");
        let b = &l["plugins"][0];
        assert_eq!(b["type"], "bridge");
        assert_eq!(b["bridge"], "op-0b8e6c2a");
        assert_eq!(b["ipMasq"], false);
        assert_eq!(b["ipam"]["ranges"][0][0]["gateway"], "10.1.0.1");
        assert_eq!(b["ipam"]["dataDir"], "/p/ipam");
        let kinds: Vec<&str> = l["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["bridge", "firewall"]);
        assert!(bridge_name(&net("local")).len() <= 15);
    }

    #[test]
    fn port_maps_bandwidth_and_switch() {
        let i = itf(json!({
            "ip": "10.1.0.5", "mac": "02:00:00:00:00:05", "bandwidth_kbps": 1000,
            "port_maps": [{ "host_port": 8080, "app_port": 80, "protocol": "udp" }],
        }));
        let l = conflist(&net("switch"), &i, Path::new("/p"));
        assert_eq!(l["plugins"][0]["type"], "macvlan");
        assert_eq!(l["plugins"][0]["master"], "eth1");
        assert_eq!(
            l["plugins"][1]["runtimeConfig"]["portMappings"],
            json!([{ "hostPort": 8080, "containerPort": 80, "protocol": "udp" }])
        );
        assert_eq!(l["plugins"][3]["type"], "bandwidth");
        assert_eq!(
            l["plugins"][3]["runtimeConfig"]["bandwidth"]["egressRate"],
            1_000_000
        );
        assert_eq!(
            cni_args(&i),
            "IgnoreUnknown=1;IP=10.1.0.5;MAC=02:00:00:00:00:05"
        );
    }
}
