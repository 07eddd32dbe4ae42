//! Device services in the system containerd (`services.linuxkit`): the
//! containers init started from the image's `services:` section (rcS runs
//! `ctr run --config … --log-uri binary://…/svclog`). What `eve list` /
//! `eve status` show, plus restart and exec.
//!
//! Nothing here decides *which* services may be touched: the agent's
//! supervisor only restarts the ones the image declared.
//!
//! # Current limitations
//! * Uptime comes from `/proc/<pid>/stat`, so it is only known when the
//!   caller shares the PID namespace with the tasks (the agent does).
//! * An interactive `enter` (a tty) is done by the CLI through `ctr tasks
//!   exec -t`, which uses the same exec API; [`exec`] captures output only.

mod observe;
mod restart;

pub use observe::{get, list, ServiceInfo};
pub use restart::{is_log_uri, restart, ServiceIo};

use std::path::Path;
use std::time::Duration;

use crate::client::Containerd;
use crate::error::Result;
use crate::task::ExecOutput;

/// Runs `args` in service `name` (its env, cwd and user), output captured
/// through files under `scratch`, killed after `timeout`.
pub async fn exec(
    c: &Containerd,
    name: &str,
    args: &[String],
    scratch: &Path,
    timeout: Duration,
) -> Result<ExecOutput> {
    crate::task::exec(c, name, args, scratch, timeout).await
}
