//! The runc shim's options message (`containerd.runc.v1.Options`), which
//! containerd-client does not generate; fields as in containerd's
//! `api/types/runc/options/oci.proto`.

use prost_types::Any;

/// Type URL of the runc shim options.
pub const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
/// The shim that runs both runc and runsc tasks.
pub const RUNC_SHIM: &str = "io.containerd.runc.v2";

/// Options for the `io.containerd.runc.v2` shim.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuncOptions {
    /// Disable pivot_root (ramdisk roots).
    #[prost(bool, tag = "1")]
    pub no_pivot_root: bool,
    /// Do not create a new session keyring.
    #[prost(bool, tag = "2")]
    pub no_new_keyring: bool,
    /// cgroup for the shim itself.
    #[prost(string, tag = "3")]
    pub shim_cgroup: String,
    /// uid owning the I/O pipes.
    #[prost(uint32, tag = "4")]
    pub io_uid: u32,
    /// gid owning the I/O pipes.
    #[prost(uint32, tag = "5")]
    pub io_gid: u32,
    /// OCI runtime binary (runc, or the runsc wrapper).
    #[prost(string, tag = "6")]
    pub binary_name: String,
    /// The runtime's state root (kept per instance to avoid ID collisions).
    #[prost(string, tag = "7")]
    pub root: String,
    /// criu binary.
    #[prost(string, tag = "8")]
    pub criu_path: String,
    /// Use the systemd cgroup driver.
    #[prost(bool, tag = "9")]
    pub systemd_cgroup: bool,
}

impl RuncOptions {
    /// Packs the options for a container record or task create request.
    pub fn to_any(&self) -> Any {
        Any {
            type_url: RUNC_OPTIONS_TYPE.to_owned(),
            value: prost::Message::encode_to_vec(self),
        }
    }
}
