//! Assembles the root filesystem tree from a definition: the skeleton,
//! the `init` entries with the shared libraries their binaries need,
//! busybox's applet links, the kernel modules, the `onboot`/`services`
//! bundles and the `files` entries.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use outpost_ocibuild::{BuiltImage, ImageDef, OciLayout};

use crate::bundle::{self, Phase};
use crate::deb::{self, KernelFiles};
use crate::def::{image_path, parse_mode, Container, Loaded};
use crate::elf;
use crate::error::{Error, Result};
use crate::kmod::{ModuleIndex, Resolved};
use crate::source::Source;
use crate::tree::{Content, Kind, Tree};

/// Where `init`'s `oci:` images land: `outpostd --images` imports from here.
pub const IMAGES_DIR: &str = "/usr/share/outpost/images";
/// The list of modules rcS loads, in order (paths relative to `/lib/modules/<release>`).
pub const MODULES_LOAD: &str = "/etc/modules.load";

/// What [`assemble`] needs besides the definition.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The parsed definition.
    pub loaded: &'a Loaded,
    /// `<target>/release`, where `cargo:` binaries are taken from.
    pub release_dir: &'a Path,
    /// Scratch directory (OCI layouts are built here).
    pub work: &'a Path,
    /// The kernel (its modules directory is read).
    pub kernel: &'a KernelFiles,
    /// Its module index.
    pub modules: &'a ModuleIndex,
}

/// The assembled root.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// Every path of the root.
    pub tree: Tree,
    /// Modules rcS loads, in order, and the requested ones built in.
    pub modules: Resolved,
    /// OCI images built (for `init` and for bundles).
    pub images: Vec<BuiltImage>,
}

/// Builds the root tree.
pub fn assemble(inp: &Inputs<'_>) -> Result<Rootfs> {
    let mut t = Tree::new(true);
    skeleton(&mut t)?;
    let mut images = ImageCache::default();
    for (i, src) in inp.loaded.init.iter().enumerate() {
        let origin = format!("init[{i}] {src}");
        add_source(&mut t, src, inp, &mut images, &origin)?;
    }
    link_busybox_applets(&mut t)?;
    let modules = inp
        .modules
        .resolve(&inp.loaded.def.kernel.modules)
        .map_err(|e| invalid(inp.loaded, "kernel.modules", e.to_string()))?;
    add_modules(
        &mut t,
        inp.kernel,
        inp.modules,
        &modules,
        MODULES_LOAD,
        "kernel.modules",
    )?;
    for (phase, list) in [
        (Phase::Onboot, &inp.loaded.def.onboot),
        (Phase::Service, &inp.loaded.def.services),
    ] {
        for (i, c) in list.iter().enumerate() {
            add_bundle(&mut t, inp, &mut images, phase, i, c)?;
        }
    }
    bundle::add_services_manifest(&mut t, &inp.loaded.def.services)?;
    add_files(&mut t, inp.loaded)?;
    Ok(Rootfs {
        tree: t,
        modules,
        images: images.built.into_values().collect(),
    })
}

fn invalid(l: &Loaded, field: &str, message: String) -> Error {
    Error::Invalid {
        path: l.path.clone(),
        field: field.into(),
        message,
    }
}

fn skeleton(t: &mut Tree) -> Result<()> {
    let o = "skeleton";
    for d in [
        "/dev",
        "/proc",
        "/sys",
        "/run",
        "/var",
        "/etc",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/containers",
    ] {
        t.dir(Path::new(d), 0o755, o)?;
    }
    t.dir(Path::new("/tmp"), 0o1777, o)
}

/// OCI images built once per definition directory.
#[derive(Default)]
struct ImageCache {
    built: BTreeMap<PathBuf, BuiltImage>,
}

impl ImageCache {
    fn build(&mut self, dir: &Path, work: &Path) -> Result<BuiltImage> {
        if let Some(b) = self.built.get(dir) {
            return Ok(b.clone());
        }
        let yaml = dir.join("image.yaml");
        let oci = |source| Error::Oci {
            what: yaml.display().to_string(),
            source,
        };
        let def = ImageDef::load(&yaml).map_err(oci)?;
        let out = work.join("oci").join(def.name.replace('/', "_"));
        let built = outpost_ocibuild::build(&def, dir, &out).map_err(oci)?;
        self.built.insert(dir.to_owned(), built.clone());
        Ok(built)
    }
}

fn add_source(
    t: &mut Tree,
    src: &Source,
    inp: &Inputs<'_>,
    images: &mut ImageCache,
    origin: &str,
) -> Result<()> {
    match src {
        Source::Deb {
            package,
            path: None,
        } => {
            for f in deb::payload(package)? {
                add_host(t, &f, &f, origin)?;
            }
        }
        Source::Deb {
            package,
            path: Some(p),
        } => {
            let f = deb::owned_file(package, p)?;
            add_host(t, &f, &f, origin)?;
        }
        Source::Cargo { bin } => {
            let f = inp.release_dir.join(bin);
            if !f.is_file() {
                return Err(Error::Io {
                    context: "missing workspace binary (build it first: cargo build --release, or make image):",
                    path: f,
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            add_host(t, &f, &Path::new("/usr/bin").join(bin), origin)?;
        }
        Source::Oci { dir } => {
            let built = images.build(dir, inp.work)?;
            let name = built
                .reference
                .split(':')
                .next()
                .unwrap_or(&built.reference);
            let name = name.rsplit('/').next().unwrap_or(name);
            add_host_dir(
                t,
                &built.layout_dir,
                &Path::new(IMAGES_DIR).join(name),
                origin,
            )?;
        }
        Source::Dir { dir } => add_host_dir(t, dir, Path::new("/"), origin)?,
    }
    Ok(())
}

/// Adds the host file `host` at `dest`: a symlink is copied as a symlink
/// and its target follows; an ELF file brings its loader and libraries.
pub fn add_host(t: &mut Tree, host: &Path, dest: &Path, origin: &str) -> Result<()> {
    add_host_depth(t, host, dest, origin, 0)
}

fn add_host_depth(
    t: &mut Tree,
    host: &Path,
    dest: &Path,
    origin: &str,
    depth: usize,
) -> Result<()> {
    if depth > 16 {
        return Err(Error::Io {
            context: "too many levels of symbolic links at",
            path: host.to_owned(),
            source: std::io::ErrorKind::InvalidData.into(),
        });
    }
    let md = host
        .symlink_metadata()
        .map_err(Error::io("reading", host))?;
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(host).map_err(Error::io("reading the link", host))?;
        t.symlink(dest, target.clone(), origin)?;
        let parent = |p: &Path| {
            p.parent()
                .map(Path::to_owned)
                .unwrap_or_else(|| PathBuf::from("/"))
        };
        return add_host_depth(
            t,
            // `/usr/bin/../sbin/x` and `/usr/sbin/x` are one host file.
            &lexical(&parent(host).join(&target)),
            &parent(dest).join(&target),
            origin,
            depth + 1,
        );
    }
    if md.is_dir() {
        return t.dir(dest, md.permissions().mode() & 0o7777, origin);
    }
    t.file(
        dest,
        Content::Host(host.to_owned()),
        md.permissions().mode() & 0o7777,
        origin,
    )?;
    for lib in elf::runtime_closure(host)? {
        add_host_depth(t, &lib, &lib, origin, depth + 1)?;
    }
    Ok(())
}

/// `path` without `.` and `..` components (resolved textually).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Copies the directory `host` onto `dest` (files keep 0755 if their owner
/// may execute them, else 0644; symlinks verbatim).
fn add_host_dir(t: &mut Tree, host: &Path, dest: &Path, origin: &str) -> Result<()> {
    let rd = std::fs::read_dir(host).map_err(Error::io("listing", host))?;
    let mut entries: Vec<_> = rd
        .collect::<Result<_, _>>()
        .map_err(Error::io("listing", host))?;
    entries.sort_by_key(|e| e.file_name());
    t.dir(dest, 0o755, origin)?;
    for e in entries {
        let (h, d) = (e.path(), dest.join(e.file_name()));
        let md = h.symlink_metadata().map_err(Error::io("reading", &h))?;
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(&h).map_err(Error::io("reading the link", &h))?;
            t.symlink(&d, target, origin)?;
        } else if md.is_dir() {
            add_host_dir(t, &h, &d, origin)?;
        } else {
            let mode = if md.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            t.file(&d, Content::Host(h.clone()), mode, origin)?;
            for lib in elf::runtime_closure(&h)? {
                add_host(t, &lib, &lib, origin)?;
            }
        }
    }
    Ok(())
}

/// Links every applet of `/bin/busybox` (when the root holds it) that no
/// other entry provides by name in `/usr/bin` or `/usr/sbin`, as linuxkit's
/// init package does; so our `logread` is not shadowed by busybox's.
pub fn link_busybox_applets(t: &mut Tree) -> Result<usize> {
    let Some(Kind::File(Content::Host(host))) =
        t.get(Path::new("/bin/busybox")).map(|n| n.kind.clone())
    else {
        return Ok(0);
    };
    let mut n = 0;
    for applet in busybox_applets(&host)? {
        let name = PathBuf::from(applet.file_name().unwrap_or_default());
        let dest = Path::new("/").join(&applet);
        if t.contains(&Path::new("/usr/bin").join(&name))
            || t.contains(&Path::new("/usr/sbin").join(&name))
            || t.contains(&dest)
        {
            continue;
        }
        t.symlink(&dest, "/bin/busybox", "busybox applets")?;
        n += 1;
    }
    Ok(n)
}

/// `busybox --list-full`: applet paths relative to `/`.
pub fn busybox_applets(busybox: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::Tool {
            tool: busybox.display().to_string(),
            what: "--list-full".into(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Tool {
            tool: busybox.display().to_string(),
            what: "--list-full".into(),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.contains(".."))
        .map(PathBuf::from)
        .collect())
}

/// Copies the resolved modules under `/lib/modules/<release>`, with a
/// `modules.dep` for exactly them and the load list at `load_list`.
pub fn add_modules(
    t: &mut Tree,
    k: &KernelFiles,
    idx: &ModuleIndex,
    r: &Resolved,
    load_list: &str,
    origin: &str,
) -> Result<()> {
    let dest_dir = Path::new("/lib/modules").join(&k.release);
    for m in &r.load_order {
        t.file(
            &dest_dir.join(m),
            Content::Host(k.modules.join(m)),
            0o644,
            origin,
        )?;
    }
    t.file(
        &dest_dir.join("modules.dep"),
        Content::Bytes(idx.dep_lines(&r.load_order).into_bytes()),
        0o644,
        origin,
    )?;
    let builtin = k.modules.join("modules.builtin");
    if builtin.exists() {
        t.file(
            &dest_dir.join("modules.builtin"),
            Content::Host(builtin),
            0o644,
            origin,
        )?;
    }
    let list: String = r
        .load_order
        .iter()
        .map(|m| format!("{}\n", m.display()))
        .collect();
    t.file(
        Path::new(load_list),
        Content::Bytes(list.into_bytes()),
        0o644,
        origin,
    )
}

fn add_bundle(
    t: &mut Tree,
    inp: &Inputs<'_>,
    images: &mut ImageCache,
    phase: Phase,
    i: usize,
    c: &Container,
) -> Result<()> {
    let field = format!("{}[{i}]", phase.dir());
    let origin = format!("{field} {}", c.name);
    let Ok(Source::Oci { dir }) = Source::parse(&c.image, &inp.loaded.base) else {
        return Err(invalid(
            inp.loaded,
            &format!("{field}.image"),
            "must be oci:<dir>".into(),
        ));
    };
    let built = images.build(&dir, inp.work)?;
    let leaf = match phase {
        Phase::Onboot => format!("{i:03}-{}", c.name),
        Phase::Service => c.name.clone(),
    };
    let bundle_dir = Path::new("/containers").join(phase.dir()).join(leaf);
    let rootfs = bundle_dir.join("rootfs");
    let layout = OciLayout::open(&built.layout_dir).map_err(|source| Error::Oci {
        what: built.layout_dir.display().to_string(),
        source,
    })?;
    let image_config = bundle::unpack(&layout, t, &rootfs, &origin)?;
    let spec = bundle::spec(c, &rootfs, &image_config, phase)
        .map_err(|m| invalid(inp.loaded, &field, m))?;
    bundle::add_mount_points(&spec, t, &rootfs, &origin)?;
    let json =
        serde_json::to_vec_pretty(&spec).map_err(|e| invalid(inp.loaded, &field, e.to_string()))?;
    t.file(
        &bundle_dir.join("config.json"),
        Content::Bytes(json),
        0o644,
        &origin,
    )
}

fn add_files(t: &mut Tree, l: &Loaded) -> Result<()> {
    for (i, f) in l.def.files.iter().enumerate() {
        let origin = format!("files[{i}]");
        let path = image_path(&f.path).map_err(|m| invalid(l, &format!("{origin}.path"), m))?;
        let mode = f
            .mode
            .as_deref()
            .map(parse_mode)
            .transpose()
            .map_err(|m| invalid(l, &format!("{origin}.mode"), m))?;
        if let Some(c) = &f.contents {
            t.file(
                &path,
                Content::Bytes(c.clone().into_bytes()),
                mode.unwrap_or(0o644),
                &origin,
            )?;
        } else if let Some(s) = &f.source {
            let host = l.base.join(s);
            let md = host.metadata().map_err(Error::io("reading", &host))?;
            let default = if md.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            t.file(&path, Content::Host(host), mode.unwrap_or(default), &origin)?;
        } else if let Some(target) = &f.symlink {
            t.symlink(&path, target, &origin)?;
        } else {
            t.replace(&path, Kind::Dir, mode.unwrap_or(0o755), &origin)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_binary_brings_its_libraries() {
        let mut t = Tree::new(true);
        add_host(&mut t, Path::new("/bin/sh"), Path::new("/bin/sh"), "t").unwrap();
        assert!(t.contains(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")));
        assert!(t.contains(Path::new("/lib64/ld-linux-x86-64.so.2")));
    }

    #[test]
    fn applets_do_not_shadow_our_binaries() {
        if !Path::new("/bin/busybox").exists() {
            return;
        }
        let mut t = Tree::new(true);
        add_host(
            &mut t,
            Path::new("/bin/busybox"),
            Path::new("/bin/busybox"),
            "bb",
        )
        .unwrap();
        t.file(
            Path::new("/usr/bin/logread"),
            Content::Bytes(b"ours".to_vec()),
            0o755,
            "cargo",
        )
        .unwrap();
        assert!(link_busybox_applets(&mut t).unwrap() > 100);
        assert!(matches!(
            t.get(Path::new("/sbin/init")).unwrap().kind,
            Kind::Symlink(_)
        ));
        assert!(!t.contains(Path::new("/sbin/logread")));
        assert_eq!(
            t.get(Path::new("/usr/bin/logread")).unwrap().origin,
            "cargo"
        );
    }
}
