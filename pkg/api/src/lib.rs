//! Outpost's declarative types: the device config an operator or controller
//! writes, and the status the agent reports. Pure: no I/O, no async runtime.
//!
//! * [`parse_device_config`] reads a YAML/JSON document app by app: a broken
//!   document is refused whole, a broken app is rejected on its own with a
//!   path for every problem (`apps[2].resources.memory_kib: must be at least 4096`).
//! * [`yaml::load`] is the one YAML loader: size, nodes, depth and alias
//!   expansion are bounded before any value is built; duplicate keys and
//!   non-UTF-8 input are refused with their line and column.
//! * [`validate_size`] bounds every app entry, per field and whole, so the
//!   agent's per-app record of it always fits the store.
//! * [`SwState`] keeps EVE's state names and numbers.
//!
//! # Current limitations
//! * A network instance with a problem (`networks[i]…`) refuses the whole
//!   document (device-level problem); EVE instead marks only that instance
//!   and its users in error.

pub mod baseos;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod duration_text;
pub mod network;
pub mod parse;
mod problem;
pub mod reference;
pub mod registry;
mod secret;
pub mod service;
pub mod status;
#[cfg(test)]
mod test_apps;
pub mod validate;
pub mod validate_fields;
pub mod validate_network;
pub mod validate_size;
pub mod yaml;

pub use baseos::BaseOsConfig;
pub use clock::Clock;
pub use config::{
    AppConfig, CpuSet, DeviceConfig, Resources, RestartMode, RestartPolicy, RuntimeClass, Secret,
    VncConfig, VolumeMount,
};
pub use network::{AppInterface, Ipv4Cidr, NetworkConfig, NetworkKind, PortMap, Protocol};
pub use parse::{
    parse_device_config, parse_device_config_bytes, parse_device_config_json, ParseError, Parsed,
    RejectedApp,
};
pub use reference::{LocalName, Reference, ReferenceError};
pub use registry::RegistryConfig;
pub use service::ServiceStatus;
pub use status::{
    AppStatus, BackoffStatus, DomainStatus, DownloadStatus, ErrorDescription, Severity, SwState,
};
pub use validate::{validate, Problem};
