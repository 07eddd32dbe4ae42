//! App networking through the standard CNI plugins (Debian's
//! `containernetworking-plugins`) and the host's `ip`/`iptables`, not
//! hand-written netlink code.
//!
//! * [`instance`] creates a network instance before its apps (the bridge
//!   `op-<8 hex of the UUID>` with the gateway address, the isolation chain
//!   of an `isolated` one) and removes it after its last app, recording
//!   ownership first so only this root's bridges are ever swept.
//! * [`isolation`] is the iptables chain of an isolated instance, jumped to
//!   from the firewall plugin's `CNI-ADMIN` chain.
//! * [`netns`] creates one named network namespace per app task, bind-mounted
//!   at `<run>/netns/<task>` (the `ip netns` layout), given to runc by path.
//! * [`conflist`] turns a [`NetworkConfig`](outpost_api::NetworkConfig) and an
//!   [`AppInterface`](outpost_api::AppInterface) into a CNI 1.0.0 network
//!   configuration list (bridge or macvlan + host-local, portmap, firewall,
//!   bandwidth).
//! * [`cni`] executes the plugins (ADD in order, DEL in reverse).
//! * [`attach`] ties them together per app and keeps an attachment record
//!   under `/persist` written *before* ADD, so a DEL after an agent crash or
//!   reboot still frees the IP lease and the iptables rules.
//! * [`failpoint`] lets tests kill the agent right after CNI ADD (debug
//!   builds under a non-`/` root only).
//!
//! # Current limitations
//! * `isolated` applies to `local` instances (forwarding between bridges);
//!   a `switch` instance's apps are on the host's L2 segment and are not
//!   filtered. An isolated app can still reach the device's own addresses
//!   on other bridges (INPUT is not filtered), as it can reach its gateway.
//! * No DHCP or DNS server on the bridge: apps get static leases from
//!   host-local and the `dns` servers of their networks in `resolv.conf`.
//! * A network whose subnet or gateway changes is re-addressed at once; apps
//!   on it keep their old addresses until they are restarted.
//! * `switch` networks (macvlan on the host interface) are generated but have
//!   no integration test yet.

pub mod attach;
pub mod cni;
pub mod conflist;
pub mod error;
pub mod failpoint;
pub mod host;
pub mod instance;
pub mod isolation;
pub mod netns;

pub use attach::{
    attach_app, detach_app, read_record, reattach, records, AppNet, AttachmentRecord,
};
pub use cni::{Cni, DEFAULT_CNI_PATH};
pub use error::NetError;
pub use instance::{ensure_network, owned, remove_network, OwnedNetwork};
