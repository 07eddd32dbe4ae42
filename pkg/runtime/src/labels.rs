//! Label keys on containerd objects. Outpost's own keys live under
//! `dev.outpost.`; keys EVE defines keep their names.

/// App UUID on containers, snapshots and leases.
pub const APP: &str = "dev.outpost.app";
/// App config version.
pub const VERSION: &str = "dev.outpost.version";
/// App number.
pub const APP_NUM: &str = "dev.outpost.app-num";
/// Device config generation that created the object.
pub const GENERATION: &str = "dev.outpost.config-generation";
/// Container volume directory of the app.
pub const VOLUME: &str = "dev.outpost.volume";
/// Runtime class (`runc` / `runsc`).
pub const RUNTIME: &str = "dev.outpost.runtime";
/// Display name (informational).
pub const NAME: &str = "dev.outpost.name";
/// Stop signal the task is stopped with.
pub const STOP_SIGNAL: &str = "dev.outpost.stop-signal";
/// Grace period in milliseconds before SIGKILL.
pub const STOP_TIMEOUT_MS: &str = "dev.outpost.stop-timeout-ms";
/// Set on leases the agent creates, so leftovers can be found.
pub const LEASE_OWNER: &str = "dev.outpost.lease";

/// EVE's VNC password key (image label and runtime-spec annotation).
pub const EVE_VNC_PASSWORD: &str = "org.lfedge.eve.vnc_password";

/// containerd GC: keeps the object while nothing else references it.
pub const GC_ROOT: &str = "containerd.io/gc.root";
/// containerd GC: lease expiry.
pub const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// containerd GC: reference from a blob to another blob (`….<i>` suffix).
pub const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
/// containerd GC: reference from a config blob to its unpacked snapshot.
pub const GC_REF_SNAPSHOT_OVERLAYFS: &str = "containerd.io/gc.ref.snapshot.overlayfs";
/// containerd: which image an unpacked snapshot came from (uncompressed digest).
pub const SNAPSHOT_UNCOMPRESSED: &str = "containerd.io/uncompressed";
