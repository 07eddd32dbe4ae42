//! OCI runtime specs for apps.

mod default;
mod from_domain;
mod user;

pub use default::{default_spec, DEFAULT_CAPS, DEFAULT_PATH};
pub use from_domain::{
    build_spec, cgroups_path, eco_cmd_args, limits, parse_signal, stop_signal, vnc_password,
    DataVolume, NetworkSpec, SpecInput, CPU_PERIOD_US, ECO_CMD,
};
pub use user::resolve_user;
