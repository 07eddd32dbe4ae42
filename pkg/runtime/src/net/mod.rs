//! App networking through the standard CNI plugins (Debian's
//! `containernetworking-plugins`), not hand-written netlink code.
//!
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
//!
//! # Current limitations
//! * `isolated` is accepted but not enforced yet (no inter-instance rules).
//! * No DHCP or DNS server on the bridge: apps get static leases from
//!   host-local and the `dns` servers of their networks in `resolv.conf`.
//! * `switch` networks (macvlan on the host interface) are generated but have
//!   no integration test yet.

pub mod attach;
pub mod cni;
pub mod conflist;
pub mod error;
pub mod netns;

pub use attach::{attach_app, detach_app, read_record, AppNet, AttachmentRecord};
pub use cni::{Cni, DEFAULT_CNI_PATH};
pub use error::NetError;
