//! Outpost's declarative types: the device config an operator or controller
//! writes, and the status the agent reports. Pure: no I/O, no async runtime.
//!
//! * [`parse_device_config`] reads a YAML/JSON document app by app: a broken
//!   document is refused whole, a broken app is rejected on its own with a
//!   path for every problem (`apps[2].resources.memory_kib: must be at least 4096`).
//! * [`SwState`] keeps EVE's state names and numbers.
//!
//! # Current limitations
//! * Networks (EVE's network instances) are not part of the schema yet.

pub mod config;
pub mod parse;
pub mod status;
pub mod validate;

pub use config::{
    AppConfig, CpuSet, DeviceConfig, Resources, RestartMode, RestartPolicy, RuntimeClass, Secret,
    VncConfig, VolumeMount,
};
pub use parse::{parse_device_config, parse_device_config_json, ParseError, Parsed, RejectedApp};
pub use status::{AppStatus, BackoffStatus, DomainStatus, ErrorDescription, Severity, SwState};
pub use validate::{validate, Problem};
