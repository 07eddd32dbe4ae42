//! `outpost-mkimage build`: definition → `vmlinuz`, `initrd.img`,
//! `rootfs.squashfs`, `disk.img` and `cmdline` in one output directory,
//! with a report of what went in and how big it is. `rootfs.squashfs` is
//! also the base OS update artifact (`outpost-controller base-os publish`);
//! `rootfs.squashfs.sha256` holds its digest (`sha256sum` format).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::deb;
use crate::def::Definition;
use crate::disk::{self, DiskSizes, Partition};
use crate::elf;
use crate::error::{Error, Result};
use crate::initramfs;
use crate::kmod::ModuleIndex;
use crate::rootfs::{self, Inputs};
use crate::tree::{Content, Kind};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The definition (`linuxkit/outpost.yml`).
    pub definition: PathBuf,
    /// The output directory (created; its previous outputs are replaced).
    pub out: PathBuf,
    /// Files for the CONFIG partition (`/config`); empty when `None`.
    pub config_dir: Option<PathBuf>,
    /// Where `cargo:` binaries are (`<CARGO_TARGET_DIR>/release`).
    pub release_dir: PathBuf,
    /// Partition sizes.
    pub sizes: DiskSizes,
}

/// An ELF file of the root and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// Path in the image.
    pub path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// It had symbols or debug info and was stripped in the image.
    pub stripped_now: bool,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The output directory.
    pub out: PathBuf,
    /// Kernel release.
    pub kernel_release: String,
    /// Executables and libraries in the root, biggest first.
    pub binaries: Vec<Binary>,
    /// Modules rcS loads / the initramfs loads.
    pub modules: (usize, usize),
    /// Requested modules that are built into the kernel.
    pub builtin_modules: Vec<String>,
    /// Bytes of regular files in the root (uncompressed).
    pub root_bytes: u64,
    /// Output file sizes: (name, bytes); disk.img also allocated bytes.
    pub files: Vec<(String, u64)>,
    /// disk.img bytes actually allocated (it is sparse).
    pub disk_allocated: u64,
    /// The partitions.
    pub partitions: Vec<Partition>,
    /// Wall time of the build.
    pub elapsed: Duration,
}

/// Builds everything.
pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let started = Instant::now();
    let loaded = Definition::load(&opts.definition)?;
    let crate::source::Source::Deb { package, .. } = &loaded.kernel else {
        return Err(Error::Invalid {
            path: loaded.path.clone(),
            field: "kernel.image".into(),
            message: "must be deb:<package>".into(),
        });
    };
    let kernel = deb::kernel(package)?;
    let idx = ModuleIndex::load(&kernel.modules)?;
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(Error::io("creating", out))?;
    let work = out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(Error::io("removing", &work))?;
    }
    std::fs::create_dir_all(&work).map_err(Error::io("creating", &work))?;

    let root = rootfs::assemble(&Inputs {
        loaded: &loaded,
        release_dir: &opts.release_dir,
        work: &work,
        kernel: &kernel,
        modules: &idx,
    })?;
    let staged = work.join("rootfs");
    root.tree.write_dir(&staged)?;
    let binaries = strip_and_measure(&root.tree, &staged)?;
    let squashfs = out.join("rootfs.squashfs");
    disk::squashfs(&staged, &squashfs)?;
    let digest = sha256_file(&squashfs)?;
    disk::write_text(
        &out.join("rootfs.squashfs.sha256"),
        &format!("{digest}  rootfs.squashfs\n"),
    )?;

    let busybox = deb::owned_file("busybox-static", Path::new("/bin/busybox"))?;
    let slot_tool = opts.release_dir.join(initramfs::SLOT_TOOL);
    let initrd = initramfs::assemble(&busybox, &slot_tool, &kernel, &idx)?;
    initramfs::write(&initrd.tree, &out.join("initrd.img"))?;
    std::fs::copy(&kernel.image, out.join("vmlinuz"))
        .map_err(Error::io("copying", &kernel.image))?;
    disk::write_text(
        &out.join("cmdline"),
        &format!("{}\n", loaded.def.kernel.cmdline),
    )?;

    let disk_path = out.join("disk.img");
    let partitions = disk::build(
        &disk_path,
        &squashfs,
        opts.config_dir.as_deref(),
        opts.sizes,
    )?;
    std::fs::remove_dir_all(&work).map_err(Error::io("removing", &work))?;

    let mut files = Vec::new();
    for f in ["vmlinuz", "initrd.img", "rootfs.squashfs", "disk.img"] {
        files.push((f.to_owned(), disk::file_sizes(&out.join(f))?.0));
    }
    Ok(BuildReport {
        out: out.clone(),
        kernel_release: kernel.release,
        binaries,
        modules: (
            root.modules.load_order.len(),
            initrd.modules.load_order.len(),
        ),
        builtin_modules: root.modules.builtin,
        root_bytes: root.tree.file_bytes(),
        files,
        disk_allocated: disk::file_sizes(&disk_path)?.1,
        partitions,
        elapsed: started.elapsed(),
    })
}

/// sha256 of a file, lowercase hex.
fn sha256_file(p: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p).map_err(Error::io("opening", p))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(Error::io("reading", p))?;
    Ok(hex::encode(h.finalize()))
}

/// Strips (with binutils' `strip`) any executable or library of the staged
/// root that still has symbols, and lists every ELF executable and library.
fn strip_and_measure(tree: &crate::tree::Tree, staged: &Path) -> Result<Vec<Binary>> {
    let mut out = Vec::new();
    for (path, node) in tree.iter() {
        if !matches!(node.kind, Kind::File(Content::Host(_)))
            || path.extension().is_some_and(|e| e == "ko")
        {
            continue;
        }
        let f = staged.join(path.strip_prefix("/").unwrap_or(path));
        let Some(info) = elf::inspect_file(&f)? else {
            continue;
        };
        let stripped_now = info.unstripped();
        if stripped_now {
            let o = std::process::Command::new("strip")
                .arg("--strip-unneeded")
                .arg(&f)
                .output()
                .map_err(|e| Error::Tool {
                    tool: "strip".into(),
                    what: f.display().to_string(),
                    message: e.to_string(),
                })?;
            if !o.status.success() {
                return Err(Error::Tool {
                    tool: "strip".into(),
                    what: f.display().to_string(),
                    message: String::from_utf8_lossy(&o.stderr).into_owned(),
                });
            }
        }
        let size = std::fs::metadata(&f)
            .map_err(Error::io("reading", &f))?
            .len();
        out.push(Binary {
            path: path.clone(),
            size,
            stripped_now,
        });
    }
    out.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
    Ok(out)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "image: {} (kernel {})",
            self.out.display(),
            self.kernel_release
        )?;
        writeln!(f, "ELF files in the root (all stripped, no debug info):")?;
        let (big, small): (Vec<&Binary>, Vec<&Binary>) =
            self.binaries.iter().partition(|b| b.size >= 100 << 10);
        for b in big {
            let note = if b.stripped_now {
                "  (stripped by mkimage)"
            } else {
                ""
            };
            writeln!(f, "  {:>10}  {}{note}", mib(b.size), b.path.display())?;
        }
        if !small.is_empty() {
            let total: u64 = small.iter().map(|b| b.size).sum();
            writeln!(
                f,
                "  {:>10}  {} smaller ones (< 100 KiB each)",
                mib(total),
                small.len()
            )?;
        }
        let all: u64 = self.binaries.iter().map(|b| b.size).sum();
        writeln!(
            f,
            "  {:>10}  in all ({} files)",
            mib(all),
            self.binaries.len()
        )?;
        writeln!(
            f,
            "kernel modules: {} loaded at boot, {} in the initramfs{}",
            self.modules.0,
            self.modules.1,
            if self.builtin_modules.is_empty() {
                String::new()
            } else {
                format!("; built in: {}", self.builtin_modules.join(", "))
            }
        )?;
        writeln!(f, "root file system: {} uncompressed", mib(self.root_bytes))?;
        for (name, size) in &self.files {
            if name == "disk.img" {
                writeln!(
                    f,
                    "  {name:<16} {:>10} ({} allocated, sparse)",
                    mib(*size),
                    mib(self.disk_allocated)
                )?;
            } else {
                writeln!(f, "  {name:<16} {:>10}", mib(*size))?;
            }
        }
        for p in &self.partitions {
            writeln!(
                f,
                "  partition {} {:<7} at {:>6} MiB, {:>10}",
                p.number,
                p.name,
                p.offset >> 20,
                mib(p.size)
            )?;
        }
        write!(f, "built in {:.1} s", self.elapsed.as_secs_f64())
    }
}
