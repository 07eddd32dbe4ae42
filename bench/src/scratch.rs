//! A private user containerd with the images from `images/` built, and
//! FIFO-free task output files: what the runtime-level benchmarks share.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use outpost_runtime::instance::{InstanceOptions, UserInstance};
use outpost_runtime::{Layout, Runtime, TaskIo};

/// The scratch set-up; `instance.kill()` when done.
pub struct Scratch {
    /// Temp root (kept alive while the benchmark runs).
    pub dir: tempfile::TempDir,
    /// OCI layouts of every `images/*` image.
    pub images: PathBuf,
    /// Device paths under the temp root.
    pub layout: Layout,
    /// The supervised user containerd.
    pub instance: UserInstance,
    /// The runtime driver on it.
    pub rt: Runtime,
    /// Task output files.
    pub io: TaskIo,
}

/// The benchmark's first argument as a count (`default` when absent).
pub fn count_arg(default: usize) -> Result<usize> {
    Ok(std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()
        .context("the argument must be a number")?
        .unwrap_or(default))
}

impl Scratch {
    /// Builds the images and starts containerd under a fresh temp root.
    pub async fn start() -> Result<Scratch> {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let dir = tempfile::Builder::new()
            .prefix("outpost-bench")
            .tempdir_in("/tmp")?;
        let images = dir.path().join("images");
        outpost_ocibuild::build_all(&ws.join("images"), &images).context("building images/")?;
        let layout = Layout::new(dir.path());
        let opts = InstanceOptions::with_log_file(dir.path().join("containerd.log"));
        let (instance, client) = UserInstance::start(&layout, opts).await?;
        let rt = Runtime::new(client, layout.clone());
        let io = TaskIo {
            stdout: dir.path().join("out"),
            stderr: dir.path().join("err"),
        };
        std::fs::write(&io.stdout, "")?;
        std::fs::write(&io.stderr, "")?;
        Ok(Scratch {
            dir,
            images,
            layout,
            instance,
            rt,
            io,
        })
    }
}
