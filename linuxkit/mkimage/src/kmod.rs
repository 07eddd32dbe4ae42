//! Kernel modules: the closure of a list of module names over the kernel
//! package's `modules.dep` (hard dependencies) and `modules.softdep`
//! (`pre:` soft dependencies such as ext4 → crc32c, resolved through
//! `modules.alias`), in an order `insmod` can load them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The module index of one kernel release.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    /// Module name → (path relative to the modules dir, hard deps as paths).
    deps: BTreeMap<String, (PathBuf, Vec<PathBuf>)>,
    /// Names of modules built into the kernel.
    builtin: BTreeSet<String>,
    /// Module name → names (or aliases) to load before it.
    softdep_pre: BTreeMap<String, Vec<String>>,
    /// Exact aliases → module names.
    aliases: BTreeMap<String, Vec<String>>,
}

/// The result of [`ModuleIndex::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Module files (relative to the modules dir), dependencies first.
    pub load_order: Vec<PathBuf>,
    /// Requested names that are built into the kernel (nothing to load).
    pub builtin: Vec<String>,
}

/// A module's name from its path: basename without `.ko[.xz|.zst|.gz]`, `-` → `_`.
pub fn module_name(path: &Path) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = base.split(".ko").next().unwrap_or(&base);
    normalise(stem)
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

impl ModuleIndex {
    /// Reads `modules.dep`, `modules.builtin`, `modules.softdep` and `modules.alias` from `dir`.
    pub fn load(dir: &Path) -> Result<ModuleIndex> {
        let read = |name: &str, required: bool| -> Result<String> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(s),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(e) => Err(Error::Io {
                    context: "reading",
                    path: p,
                    source: e,
                }),
            }
        };
        Ok(ModuleIndex::parse(
            &read("modules.dep", true)?,
            &read("modules.builtin", false)?,
            &read("modules.softdep", false)?,
            &read("modules.alias", false)?,
        ))
    }

    /// Builds an index from the files' contents.
    pub fn parse(dep: &str, builtin: &str, softdep: &str, alias: &str) -> ModuleIndex {
        let mut idx = ModuleIndex::default();
        for line in dep.lines() {
            let Some((m, deps)) = line.split_once(':') else {
                continue;
            };
            let path = PathBuf::from(m.trim());
            let deps = deps.split_whitespace().map(PathBuf::from).collect();
            idx.deps.insert(module_name(&path), (path, deps));
        }
        idx.builtin = builtin
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| module_name(Path::new(l.trim())))
            .collect();
        for line in softdep.lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("softdep") {
                continue;
            }
            let Some(m) = w.next() else { continue };
            let mut pre = Vec::new();
            let mut in_pre = false;
            for t in w {
                match t {
                    "pre:" => in_pre = true,
                    "post:" => in_pre = false,
                    t if in_pre => pre.push(t.to_owned()),
                    _ => {}
                }
            }
            idx.softdep_pre.entry(normalise(m)).or_default().extend(pre);
        }
        for line in alias.lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(a), Some(m)) = (w.next(), w.next(), w.next()) {
                if !a.contains(['*', '?', '[']) {
                    idx.aliases
                        .entry(a.to_owned())
                        .or_default()
                        .push(normalise(m));
                }
            }
        }
        idx
    }

    /// The modules to load for `wanted`, dependencies first. An unknown
    /// name is an error; a built-in one is reported, not loaded.
    pub fn resolve(&self, wanted: &[String]) -> Result<Resolved> {
        let mut r = Resolved::default();
        let mut done = BTreeSet::new();
        for w in wanted {
            let name = normalise(w);
            if self.builtin.contains(&name) {
                r.builtin.push(name);
                continue;
            }
            if !self.deps.contains_key(&name) {
                return Err(Error::Module {
                    module: w.clone(),
                    message: "not in modules.dep or modules.builtin of this kernel".into(),
                });
            }
            self.visit(&name, &mut done, &mut r.load_order, 0);
        }
        Ok(r)
    }

    fn visit(
        &self,
        name: &str,
        done: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
        depth: usize,
    ) {
        if depth > 64 || !done.insert(name.to_owned()) {
            return;
        }
        let Some((path, deps)) = self.deps.get(name) else {
            return;
        };
        for soft in self.softdep_pre.get(name).into_iter().flatten() {
            let n = normalise(soft);
            let target = if self.deps.contains_key(&n) {
                Some(n)
            } else {
                // An alias: the first module providing it (sorted, so stable).
                self.aliases.get(soft).and_then(|ms| {
                    ms.iter()
                        .filter(|m| self.deps.contains_key(*m))
                        .min()
                        .cloned()
                })
            };
            if let Some(t) = target {
                self.visit(&t, done, order, depth + 1);
            }
        }
        // modules.dep lists every (transitive) dependency; the last one must
        // load first, as modprobe does: walk them in reverse.
        for d in deps.iter().rev() {
            self.visit(&module_name(d), done, order, depth + 1);
        }
        order.push(path.clone());
    }

    /// `modules.dep` lines for exactly the modules in `order`.
    pub fn dep_lines(&self, order: &[PathBuf]) -> String {
        let mut out = String::new();
        for p in order {
            if let Some((_, deps)) = self.deps.get(&module_name(p)) {
                let deps: Vec<String> = deps.iter().map(|d| d.display().to_string()).collect();
                out.push_str(
                    &format!("{}: {}\n", p.display(), deps.join(" ")).replace(": \n", ":\n"),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/drivers/block/virtio_blk.ko:
";

    fn idx() -> ModuleIndex {
        ModuleIndex::parse(
            DEP,
            "kernel/drivers/virtio/virtio.ko\n",
            "softdep ext4 pre: crc32c\n",
            "alias crc32c crc32c_generic\nalias crc32c crc32c_intel\nalias pci:v*d* virtio_pci\n",
        )
    }

    #[test]
    fn dependencies_load_first() {
        let r = idx()
            .resolve(&[
                "br_netfilter".into(),
                "ext4".into(),
                "virtio".into(),
                "virtio-blk".into(),
            ])
            .unwrap();
        let names: Vec<String> = r.load_order.iter().map(|p| module_name(p)).collect();
        assert_eq!(
            names,
            [
                "llc",
                "stp",
                "bridge",
                "br_netfilter",
                "crc32c_generic",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4",
                "virtio_blk"
            ]
        );
        assert_eq!(r.builtin, ["virtio"]);
    }

    #[test]
    fn unknown_module_is_an_error() {
        let e = idx().resolve(&["nosuch".into()]).unwrap_err().to_string();
        assert!(e.contains("nosuch") && e.contains("modules.dep"), "{e}");
    }

    #[test]
    fn pruned_dep_file() {
        let i = idx();
        let r = i.resolve(&["bridge".into()]).unwrap();
        assert_eq!(
            i.dep_lines(&r.load_order),
            "kernel/net/llc/llc.ko:\nkernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
             kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n"
        );
    }
}
