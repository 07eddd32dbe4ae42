//! `onboot` and `services` containers as linuxkit lays them out: the
//! image's layers unpacked at build time into
//! `/containers/<onboot|services>/<name>/rootfs` (read-only, in the squashfs)
//! beside an OCI runtime `config.json`. At boot `runc run --bundle` runs an
//! onboot step; `ctr run --config` starts a service in the system containerd.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::read::GzDecoder;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxNamespaceType, Mount, Process, Root, Spec,
};
use outpost_ocibuild::OciLayout;

use crate::def::{parse_bind, Container, Share};
use crate::error::{Error, Result};
use crate::tree::{Content, Kind, Tree};

/// Every capability, for `capabilities: [all]`.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Which list a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Run once at boot with runc.
    Onboot,
    /// Long-running, in the system containerd.
    Service,
}

impl Phase {
    /// `onboot` / `services`: the directory under `/containers`.
    pub fn dir(self) -> &'static str {
        match self {
            Phase::Onboot => "onboot",
            Phase::Service => "services",
        }
    }
}

/// Unpacks the image in `layout` into `tree` at `root` (later layers win).
pub fn unpack(
    layout: &OciLayout,
    tree: &mut Tree,
    root: &Path,
    origin: &str,
) -> Result<ImageConfiguration> {
    let oci = |source| Error::Oci {
        what: layout.dir().display().to_string(),
        source,
    };
    let manifest = layout.manifest().map_err(oci)?;
    let config = layout.config_for(&manifest.value).map_err(oci)?;
    for layer in manifest.value.layers() {
        let reader = layout.blob_reader(layer.digest()).map_err(oci)?;
        let mut ar = tar::Archive::new(GzDecoder::new(reader));
        let tar_err = |e: std::io::Error| Error::Io {
            context: "unpacking layer",
            path: layout.blob_path(layer.digest()),
            source: e,
        };
        for entry in ar.entries().map_err(tar_err)? {
            let mut entry = entry.map_err(tar_err)?;
            let rel = entry.path().map_err(tar_err)?.into_owned();
            if rel
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".wh."))
            {
                return Err(Error::Io {
                    context: "whiteouts are not supported in onboot/service images:",
                    path: rel,
                    source: std::io::ErrorKind::Unsupported.into(),
                });
            }
            let dest = root.join(&rel);
            let mode = entry.header().mode().map_err(tar_err)? & 0o7777;
            let kind = match entry.header().entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink(
                    entry
                        .link_name()
                        .map_err(tar_err)?
                        .map(|l| l.into_owned())
                        .unwrap_or_default(),
                ),
                tar::EntryType::Link => {
                    let target = root.join(entry.link_name().map_err(tar_err)?.unwrap_or_default());
                    match tree.get(&target) {
                        Some(n) => n.kind.clone(),
                        None => continue,
                    }
                }
                tar::EntryType::Regular => {
                    let mut b = Vec::new();
                    entry.read_to_end(&mut b).map_err(tar_err)?;
                    Kind::File(Content::Bytes(b))
                }
                _ => continue,
            };
            tree.replace(&dest, kind, mode, origin)?;
        }
    }
    Ok(config.value)
}

/// The runtime spec for `c`, whose root is at `rootfs` on the device.
pub fn spec(
    c: &Container,
    rootfs: &Path,
    image: &ImageConfiguration,
    phase: Phase,
) -> Result<Spec, String> {
    let ic = image.config().clone().unwrap_or_default();
    let args = match &c.command {
        Some(cmd) => cmd.clone(),
        None => ic
            .entrypoint()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(ic.cmd().clone().unwrap_or_default())
            .collect(),
    };
    if args.is_empty() {
        return Err("no command, and the image has neither entrypoint nor cmd".into());
    }
    let mut env = ic
        .env()
        .clone()
        .unwrap_or_else(|| vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()]);
    env.extend(c.env.iter().cloned());
    let cwd = c
        .cwd
        .clone()
        .or_else(|| ic.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());

    let mut process = Process::default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(cwd));
    if !c.capabilities.is_empty() {
        let caps = capabilities(&c.capabilities)?;
        let mut lc = LinuxCapabilities::default();
        lc.set_bounding(Some(caps.clone()));
        lc.set_effective(Some(caps.clone()));
        lc.set_permitted(Some(caps.clone()));
        lc.set_inheritable(Some(caps.clone()));
        lc.set_ambient(Some(caps));
        process.set_capabilities(Some(lc));
    }

    let mut root = Root::default();
    root.set_path(rootfs.to_owned());
    root.set_readonly(Some(c.readonly.unwrap_or(true)));

    let mut mounts = oci_spec::runtime::get_default_mounts();
    for b in &c.binds {
        let (src, dst, opts) = parse_bind(b)?;
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(dst));
        m.set_typ(Some("bind".into()));
        m.set_source(Some(PathBuf::from(src)));
        m.set_options(Some(opts));
        mounts.push(m);
    }

    let mut linux = oci_spec::runtime::Linux::default();
    let drop_ns = |t: LinuxNamespaceType, share: Share| {
        move |n: &oci_spec::runtime::LinuxNamespace| !(n.typ() == t && share == Share::Host)
    };
    let net = c.net_share()?;
    let pid = c.pid_share()?;
    let ns: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(drop_ns(LinuxNamespaceType::Network, net))
        .filter(drop_ns(LinuxNamespaceType::Pid, pid))
        .collect();
    linux.set_namespaces(Some(ns));
    linux.set_cgroups_path(Some(PathBuf::from(format!("/{}/{}", phase.dir(), c.name))));

    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_hostname(Some(c.name.clone()));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// `CAP_X` / `X` / `all` → the set.
pub fn capabilities(names: &[String]) -> Result<Capabilities, String> {
    let mut set = HashSet::new();
    for n in names {
        if n.eq_ignore_ascii_case("all") {
            for a in ALL_CAPABILITIES {
                set.insert(Capability::from_str(a).map_err(|e| format!("{a}: {e}"))?);
            }
            continue;
        }
        let bare = n.strip_prefix("CAP_").unwrap_or(n);
        set.insert(Capability::from_str(bare).map_err(|_| format!("{n:?} is not a capability"))?);
    }
    Ok(set)
}

/// Adds the directories runc mounts onto inside a read-only `rootfs`
/// (it cannot create them at run time on a squashfs).
pub fn add_mount_points(spec: &Spec, tree: &mut Tree, rootfs: &Path, origin: &str) -> Result<()> {
    for m in spec.mounts().iter().flatten() {
        let dest = rootfs.join(m.destination().strip_prefix("/").unwrap_or(m.destination()));
        if !tree.contains(&dest) {
            tree.dir(&dest, 0o755, origin)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn image(cfg: &str) -> ImageConfiguration {
        serde_json::from_str(&format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{cfg}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn host_network_and_binds() {
        let c = container(
            "{name: dhcpcd, image: oci:x, command: [/sbin/udhcpc, -q], net: host, \
             capabilities: [CAP_NET_ADMIN, NET_RAW], binds: [\"/run/resolvconf:/run/resolvconf\"], env: [A=b]}",
        );
        let s = spec(
            &c,
            Path::new("/containers/onboot/000-dhcpcd/rootfs"),
            &image(r#"{"Env":["PATH=/bin"]}"#),
            Phase::Onboot,
        )
        .unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/sbin/udhcpc", "-q"]);
        assert_eq!(p.env().as_ref().unwrap(), &["PATH=/bin", "A=b"]);
        let caps = p
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap();
        assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::NetRaw));
        let linux = s.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Pid));
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/onboot/dhcpcd"))
        );
        assert!(s
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.destination() == Path::new("/run/resolvconf")));
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    }

    #[test]
    fn command_defaults_to_the_image() {
        let c = container("{name: s, image: oci:x}");
        let s = spec(
            &c,
            Path::new("/r"),
            &image(r#"{"Entrypoint":["/bin/sh","-c"],"Cmd":["sleep 1"],"WorkingDir":"/app"}"#),
            Phase::Service,
        )
        .unwrap();
        let p = s.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &["/bin/sh", "-c", "sleep 1"]);
        assert_eq!(p.cwd(), Path::new("/app"));
        assert!(spec(&c, Path::new("/r"), &image("{}"), Phase::Service).is_err());
        assert_eq!(
            capabilities(&["all".into()]).unwrap().len(),
            ALL_CAPABILITIES.len()
        );
        assert!(capabilities(&["CAP_FLY".into()]).is_err());
    }
}

/// Where `outpostd` reads the services the image declares (it restarts
/// those, and only those, when they exit).
pub const SERVICES_MANIFEST: &str = "/etc/outpost/services.json";

/// Writes [`SERVICES_MANIFEST`]: the names of the `services:` entries, a
/// JSON list.
pub fn add_services_manifest(t: &mut Tree, services: &[Container]) -> Result<()> {
    let names: Vec<&str> = services.iter().map(|c| c.name.as_str()).collect();
    let mut json = serde_json::to_vec_pretty(&names).unwrap_or_else(|_| b"[]".to_vec());
    json.push(b'\n');
    t.file(
        Path::new(SERVICES_MANIFEST),
        Content::Bytes(json),
        0o644,
        "services manifest",
    )
}

#[cfg(test)]
mod manifest_tests {
    use super::*;

    #[test]
    fn the_manifest_lists_the_service_names() {
        let def: crate::def::Definition = serde_yaml::from_str(
            "kernel: {image: deb:linux-image-amd64}\nservices:\n  - {name: dhcpcd, image: oci:x}\n  - {name: sshd, image: oci:y}\n",
        )
        .unwrap();
        let mut t = Tree::new(true);
        add_services_manifest(&mut t, &def.services).unwrap();
        let Some(Kind::File(Content::Bytes(b))) =
            t.get(Path::new(SERVICES_MANIFEST)).map(|n| &n.kind)
        else {
            panic!("no manifest");
        };
        let names: Vec<String> = serde_json::from_slice(b).unwrap();
        assert_eq!(names, ["dhcpcd", "sshd"]);
    }
}
