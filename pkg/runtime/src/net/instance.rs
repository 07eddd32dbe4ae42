//! Network instances on the host: what exists for a network besides its
//! apps' interfaces — the bridge of a `local` instance (with the gateway
//! address), the isolation chain of an `isolated` one, and host-local's
//! lease directory.
//!
//! Ownership is recorded before anything is created, in
//! `<persist>/vault/net/networks/<uuid>.json`, so a crash at any point
//! leaves a record that the next pass either completes ([`ensure_network`])
//! or undoes ([`remove_network`]). Only what a record of *this* root names
//! is ever removed: agents (or tests) with other roots keep their bridges.

use std::path::PathBuf;

use outpost_api::{NetworkConfig, NetworkKind};
use serde::{Deserialize, Serialize};

use super::conflist::{bridge_name, network_name};
use super::error::NetError;
use super::host::{check, link_exists, run};
use super::isolation;
use crate::layout::Layout;

/// What this root created (or is about to create) for one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedNetwork {
    /// The network as last set up.
    pub network: NetworkConfig,
    /// The bridge (local instances).
    #[serde(default)]
    pub bridge: Option<String>,
    /// The isolation chain (isolated local instances).
    #[serde(default)]
    pub isolation_chain: Option<String>,
}

impl OwnedNetwork {
    /// What `network` needs on the host.
    pub fn wanted(network: &NetworkConfig) -> OwnedNetwork {
        let bridge = (network.kind == NetworkKind::Local).then(|| bridge_name(network));
        let isolation_chain = bridge
            .as_deref()
            .filter(|_| network.isolated)
            .map(isolation::chain_name);
        OwnedNetwork {
            network: network.clone(),
            bridge,
            isolation_chain,
        }
    }

    /// The network's UUID.
    pub fn uuid(&self) -> &str {
        &self.network.uuid
    }
}

/// Ownership records: `<persist>/vault/net/networks`.
pub fn networks_dir(layout: &Layout) -> PathBuf {
    layout.net_ipam().with_file_name("networks")
}

fn record_path(layout: &Layout, uuid: &str) -> PathBuf {
    networks_dir(layout).join(format!("{uuid}.json"))
}

/// Every network this root owns, by record (undecodable records are
/// skipped with a warning).
pub fn owned(layout: &Layout) -> Result<Vec<OwnedNetwork>, NetError> {
    let dir = networks_dir(layout);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetError::io("listing", dir, e)),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| NetError::io("reading", &path, e))?;
        match serde_json::from_slice::<OwnedNetwork>(&bytes) {
            Ok(rec) => out.push(rec),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable network record skipped")
            }
        }
    }
    out.sort_by(|a, b| a.network.uuid.cmp(&b.network.uuid));
    Ok(out)
}

fn read(layout: &Layout, uuid: &str) -> Result<Option<OwnedNetwork>, NetError> {
    let path = record_path(layout, uuid);
    match std::fs::read(&path) {
        Ok(b) => Ok(serde_json::from_slice(&b).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NetError::io("reading", path, e)),
    }
}

fn write(layout: &Layout, rec: &OwnedNetwork) -> Result<(), NetError> {
    let dir = networks_dir(layout);
    std::fs::create_dir_all(&dir).map_err(|e| NetError::io("creating", &dir, e))?;
    let path = record_path(layout, rec.uuid());
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(rec).expect("records serialise");
    std::fs::write(&tmp, bytes).map_err(|e| NetError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| NetError::io("renaming", &path, e))
}

/// Records ownership of `network` unless a record exists already. Called
/// before any CNI ADD, so a bridge the bridge plugin creates is always one
/// this root will remove.
pub fn claim(layout: &Layout, network: &NetworkConfig) -> Result<(), NetError> {
    if read(layout, &network.uuid)?.is_none() {
        write(layout, &OwnedNetwork::wanted(network))?;
    }
    Ok(())
}

/// Creates or repairs everything `network` needs on the host: ownership
/// record, bridge with the gateway address (local), isolation chain
/// (isolated local; removed again when `isolated` is turned off).
/// Idempotent; returns whether anything was changed.
pub async fn ensure_network(layout: &Layout, network: &NetworkConfig) -> Result<bool, NetError> {
    let want = OwnedNetwork::wanted(network);
    let old = read(layout, &network.uuid)?;
    // Until the work is done the record names everything either side has,
    // so a crash in between leaves nothing unowned.
    let mut interim = want.clone();
    if let Some(o) = &old {
        interim.bridge = interim.bridge.or(o.bridge.clone());
        interim.isolation_chain = interim.isolation_chain.or(o.isolation_chain.clone());
    }
    if old.as_ref() != Some(&interim) {
        write(layout, &interim)?;
    }
    let mut changed = old.as_ref() != Some(&want);
    if let Some(old_bridge) = old.as_ref().and_then(|o| o.bridge.clone()) {
        if want.bridge.as_ref() != Some(&old_bridge) {
            delete_link(&old_bridge).await?;
        }
    }
    if let Some(old_chain) = old.as_ref().and_then(|o| o.isolation_chain.clone()) {
        if want.isolation_chain.as_ref() != Some(&old_chain) {
            isolation::remove(&old_chain, &network.uuid).await?;
        }
    }
    if let Some(bridge) = &want.bridge {
        changed |= ensure_bridge(bridge, network).await?;
    }
    if let (Some(chain), Some(bridge)) = (&want.isolation_chain, &want.bridge) {
        isolation::ensure(chain, bridge, &network.uuid).await?;
    }
    if interim != want {
        write(layout, &want)?;
    }
    Ok(changed)
}

/// Whether the host side of an owned network is still complete (the bridge
/// exists); cheap, for deciding whether [`ensure_network`] must run again.
pub fn looks_complete(layout: &Layout, network: &NetworkConfig) -> bool {
    match read(layout, &network.uuid) {
        Ok(Some(rec)) => {
            rec == OwnedNetwork::wanted(network) && rec.bridge.as_deref().is_none_or(link_exists)
        }
        _ => false,
    }
}

/// The bridge exists, carries the gateway address (and no other IPv4
/// address) and is up. Returns whether anything had to be done.
async fn ensure_bridge(bridge: &str, network: &NetworkConfig) -> Result<bool, NetError> {
    let mut changed = false;
    if !link_exists(bridge) {
        let made = run("ip", &["link", "add", "name", bridge, "type", "bridge"]).await?;
        // The bridge plugin may have made it meanwhile.
        if !made.ok && !link_exists(bridge) {
            return Err(NetError::Command {
                command: format!("ip link add name {bridge} type bridge"),
                message: made.stderr,
            });
        }
        changed = true;
    }
    let gw = format!("{}/{}", network.gateway_addr(), network.subnet.prefix());
    let shown = check("ip", &["-4", "-o", "addr", "show", "dev", bridge]).await?;
    let addrs: Vec<&str> = shown
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()
        })
        .collect();
    if addrs != [gw.as_str()] {
        if !addrs.is_empty() {
            check("ip", &["-4", "addr", "flush", "dev", bridge]).await?;
        }
        check("ip", &["addr", "add", &gw, "dev", bridge]).await?;
        changed = true;
    }
    check("ip", &["link", "set", bridge, "up"]).await?;
    Ok(changed)
}

async fn delete_link(name: &str) -> Result<(), NetError> {
    if !link_exists(name) {
        return Ok(());
    }
    let out = run("ip", &["link", "delete", name]).await?;
    if !out.ok && link_exists(name) {
        return Err(NetError::Command {
            command: format!("ip link delete {name}"),
            message: out.stderr,
        });
    }
    Ok(())
}

/// Removes what the record of network `uuid` names — isolation chain,
/// bridge, host-local's lease directory — and then the record. Call it only
/// when no app is attached any more. Safe to repeat; a network without a
/// record is not this root's and is left alone.
pub async fn remove_network(layout: &Layout, uuid: &str) -> Result<(), NetError> {
    let Some(rec) = read(layout, uuid)? else {
        let stale = record_path(layout, uuid);
        if stale.exists() {
            // Unreadable record: nothing it names can be trusted; drop it.
            std::fs::remove_file(&stale).map_err(|e| NetError::io("removing", &stale, e))?;
        }
        return Ok(());
    };
    if let Some(chain) = &rec.isolation_chain {
        isolation::remove(chain, uuid).await?;
    }
    if let Some(bridge) = &rec.bridge {
        delete_link(bridge).await?;
    }
    let leases = layout.net_ipam().join(network_name(&rec.network));
    if leases.exists() {
        std::fs::remove_dir_all(&leases).map_err(|e| NetError::io("removing", &leases, e))?;
    }
    let path = record_path(layout, uuid);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("removing", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(kind: &str, isolated: bool) -> NetworkConfig {
        serde_json::from_value(serde_json::json!({
            "uuid": "0b8e6c2a-1f3d-4a5b-9c7e-2d4f6a8b0c1e", "name": "lan", "kind": kind,
            "subnet": "10.213.90.0/24", "isolated": isolated,
            "host_interface": if kind == "switch" { serde_json::json!("eth1") } else { serde_json::Value::Null },
        }))
        .unwrap()
    }

    #[test]
    fn what_each_kind_needs_on_the_host() {
        let l = OwnedNetwork::wanted(&net("local", false));
        assert_eq!(l.bridge.as_deref(), Some("op-0b8e6c2a"));
        assert_eq!(l.isolation_chain, None);
        let i = OwnedNetwork::wanted(&net("local", true));
        assert_eq!(i.isolation_chain.as_deref(), Some("OP-ISO-0b8e6c2a"));
        let s = OwnedNetwork::wanted(&net("switch", true));
        assert_eq!((s.bridge, s.isolation_chain), (None, None));
    }

    #[test]
    fn claim_writes_once_and_records_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(owned(&layout).unwrap().is_empty());
        claim(&layout, &net("local", false)).unwrap();
        // A second claim with another config keeps the first record.
        claim(&layout, &net("local", true)).unwrap();
        let all = owned(&layout).unwrap();
        assert_eq!(all, [OwnedNetwork::wanted(&net("local", false))]);
        assert!(networks_dir(&layout).ends_with("persist/vault/net/networks"));
    }
}
