//! `isolated` network instances: an iptables chain per isolated local
//! instance that drops forwarding between its bridge and every other Outpost
//! bridge (`op-+`), in both directions, while traffic within the bridge and
//! out to the uplink (NAT) passes.
//!
//! The chain is jumped to from `CNI-ADMIN`, the chain the CNI firewall
//! plugin evaluates first in `CNI-FORWARD` for administrators' rules, so it
//! takes effect before the plugin's per-address ACCEPT rules. The firewall
//! plugin creates `FORWARD → CNI-FORWARD → CNI-ADMIN` on every interface ADD;
//! before any app is attached the chain is in place but not reached, which
//! is harmless since there is no app traffic to filter yet.

use super::error::NetError;
use super::host::{iptables, iptables_check};

/// The administrators' chain of the CNI firewall plugin.
pub const ADMIN_CHAIN: &str = "CNI-ADMIN";
/// Matches every Outpost bridge (`op-<hex>`).
pub const ALL_BRIDGES: &str = "op-+";

/// Name of the isolation chain of a network (`OP-ISO-<8 hex>`, at most 28
/// characters as iptables requires), from its bridge name `op-<8 hex>`.
pub fn chain_name(bridge: &str) -> String {
    format!("OP-ISO-{}", bridge.trim_start_matches("op-"))
}

/// The rules of the chain, as `iptables -S` prints them.
pub fn rules(chain: &str, bridge: &str) -> Vec<String> {
    vec![
        format!("-A {chain} -i {bridge} -o {bridge} -j RETURN"),
        format!("-A {chain} -i {bridge} -o {ALL_BRIDGES} -j DROP"),
        format!("-A {chain} -i {ALL_BRIDGES} -o {bridge} -j DROP"),
    ]
}

fn jump(chain: &str, network: &str) -> Vec<String> {
    vec![
        ADMIN_CHAIN.into(),
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        format!("outpost isolated network {network}"),
        "-j".into(),
        chain.into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Creates (or repairs) the isolation chain of `bridge` and its jump from
/// `CNI-ADMIN`. Idempotent.
pub async fn ensure(chain: &str, bridge: &str, network: &str) -> Result<(), NetError> {
    let want = rules(chain, bridge);
    let listed = iptables(&["-S", chain]).await?;
    if !listed.ok {
        iptables_check(&["-N", chain]).await?;
    }
    let have: Vec<&str> = listed
        .stdout
        .lines()
        .filter(|l| l.starts_with("-A "))
        .collect();
    if have != strs(&want) {
        iptables_check(&["-F", chain]).await?;
        for rule in &want {
            let args: Vec<&str> = rule.split(' ').skip(1).collect();
            let mut a = vec!["-A"];
            a.extend(args);
            iptables_check(&a).await?;
        }
    }
    if !iptables(&["-S", ADMIN_CHAIN]).await?.ok {
        // The firewall plugin accepts a chain that already exists.
        let made = iptables(&["-N", ADMIN_CHAIN]).await?;
        if !made.ok && !iptables(&["-S", ADMIN_CHAIN]).await?.ok {
            return Err(NetError::Command {
                command: format!("iptables -N {ADMIN_CHAIN}"),
                message: made.stderr,
            });
        }
    }
    let j = jump(chain, network);
    let mut check = vec!["-C"];
    check.extend(strs(&j));
    if !iptables(&check).await?.ok {
        let mut add = vec!["-A"];
        add.extend(strs(&j));
        iptables_check(&add).await?;
    }
    Ok(())
}

/// Removes the jump and the chain; missing pieces are fine.
pub async fn remove(chain: &str, network: &str) -> Result<(), NetError> {
    let j = jump(chain, network);
    let mut del = vec!["-D"];
    del.extend(strs(&j));
    // A jump added twice (two agents racing on one root) goes too.
    for _ in 0..8 {
        if !iptables(&del).await?.ok {
            break;
        }
    }
    if iptables(&["-S", chain]).await?.ok {
        iptables_check(&["-F", chain]).await?;
        iptables_check(&["-X", chain]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_and_rules_name_the_bridge() {
        let c = chain_name("op-0b8e6c2a");
        assert_eq!(c, "OP-ISO-0b8e6c2a");
        assert!(c.len() <= 28);
        assert_eq!(
            rules(&c, "op-0b8e6c2a"),
            [
                "-A OP-ISO-0b8e6c2a -i op-0b8e6c2a -o op-0b8e6c2a -j RETURN",
                "-A OP-ISO-0b8e6c2a -i op-0b8e6c2a -o op-+ -j DROP",
                "-A OP-ISO-0b8e6c2a -i op-+ -o op-0b8e6c2a -j DROP",
            ]
        );
    }
}
