//! Network instances (EVE: `NetworkInstanceConfig`) and the per-app virtual
//! interfaces attached to them (EVE: the app's VIFs).
//!
//! A `local` instance is a private bridge with its own subnet and optional
//! outbound NAT; a `switch` instance bridges apps onto a host interface.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One network instance on the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Stable identity; apps' interfaces refer to it.
    pub uuid: String,
    /// Human name shown by the CLI.
    pub name: String,
    /// Private bridge (`local`) or bridge onto a host port (`switch`).
    #[serde(default)]
    pub kind: NetworkKind,
    /// The instance's IPv4 subnet, e.g. `10.1.0.0/24`.
    pub subnet: Ipv4Cidr,
    /// Address of the device on the subnet; defaults to the subnet's first host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// DNS servers written into the apps' `/etc/resolv.conf`.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// Apps on this instance cannot reach apps on other instances.
    #[serde(default)]
    pub isolated: bool,
    /// Masquerade the apps' outbound traffic behind the device's address.
    #[serde(default = "default_true")]
    pub nat: bool,
    /// Host interface a `switch` instance bridges to (only for `switch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_interface: Option<String>,
}

fn default_true() -> bool {
    true
}

impl NetworkConfig {
    /// The gateway in effect: the configured one or the subnet's first host.
    pub fn gateway_addr(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| self.subnet.first_host())
    }
}

/// What a network instance is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// A private bridge with its own subnet (NAT optional).
    #[default]
    Local,
    /// Apps share a host interface's L2 segment.
    Switch,
}

impl NetworkKind {
    /// The name used in configs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Local => "local",
            NetworkKind::Switch => "switch",
        }
    }
}

/// One virtual interface of an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppInterface {
    /// UUID of the network instance it attaches to.
    pub network: String,
    /// Static MAC (`02:00:00:00:00:01`); random when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Static IPv4 address inside the network's subnet; allocated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Host ports forwarded to the app.
    #[serde(default)]
    pub port_maps: Vec<PortMap>,
    /// Rate limit in both directions, in kbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_kbps: Option<u64>,
}

/// A host port forwarded to a port of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMap {
    /// Port on the device.
    pub host_port: u16,
    /// Port inside the app.
    pub app_port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Transport protocol of a port map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// `tcp` / `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// An IPv4 network in CIDR notation, written as text (`10.1.0.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// A CIDR from an address and prefix length (0 to 32).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 32 {
            return Err(format!("prefix /{prefix} is longer than 32"));
        }
        Ok(Ipv4Cidr { addr, prefix })
    }

    /// The address as written (may have host bits set; validation refuses that).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address (host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The first usable host address (network + 1).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()).saturating_add(1))
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (e.g. 10.1.0.0/24)"))?;
        let addr = a
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix = p
            .parse::<u8>()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        Ipv4Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c: Ipv4Cidr = "10.1.0.0/24".parse().unwrap();
        assert_eq!(c.first_host(), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
        assert!(c.contains(Ipv4Addr::new(10, 1, 0, 77)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 1, 1)));
        let wide: Ipv4Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.overlaps(&wide) && wide.overlaps(&c));
        assert!(!c.overlaps(&"10.2.0.0/24".parse().unwrap()));
        assert_eq!(c.to_string(), "10.1.0.0/24");
        for bad in ["10.1.0.0", "10.1.0/24", "10.1.0.0/33", "x/8"] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let n: NetworkConfig = serde_json::from_value(serde_json::json!({
            "uuid": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e",
            "name": "lan",
            "subnet": "10.1.0.0/24",
        }))
        .unwrap();
        assert_eq!(n.kind, NetworkKind::Local);
        assert!(n.nat && !n.isolated);
        assert_eq!(n.gateway_addr(), Ipv4Addr::new(10, 1, 0, 1));
        let bad = serde_json::from_value::<AppInterface>(serde_json::json!({
            "network": "x", "port_map": []
        }));
        assert!(bad.unwrap_err().to_string().contains("port_map"));
    }
}
