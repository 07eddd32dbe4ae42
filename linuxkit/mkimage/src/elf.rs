//! Just enough ELF64 (little-endian) reading to copy a binary with what it
//! needs at run time: its interpreter (`PT_INTERP`), its shared libraries
//! (`DT_NEEDED`, searched along `DT_RUNPATH`/`DT_RPATH` and the standard
//! Debian directories), and whether it still carries symbols or debug info.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the builder needs to know about an ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_type`: 1 relocatable (kernel modules), 2 executable, 3 shared object / PIE.
    pub kind: u16,
    /// `PT_INTERP`, the dynamic loader.
    pub interp: Option<String>,
    /// `DT_NEEDED` sonames, in order.
    pub needed: Vec<String>,
    /// `DT_RUNPATH` or `DT_RPATH` entries.
    pub runpath: Vec<String>,
    /// Has a `.symtab` section.
    pub symtab: bool,
    /// Has `.debug_*` sections.
    pub debug: bool,
}

impl ElfInfo {
    /// True for an executable or shared object (not a kernel module, whose
    /// symbol table the kernel needs) that still has symbols or debug info.
    pub fn unstripped(&self) -> bool {
        matches!(self.kind, 2 | 3) && (self.symtab || self.debug)
    }
}

/// Library directories searched after the run path (Debian amd64's ld.so.conf).
pub const LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// True when `bytes` starts like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Parses the ELF file at `path`; `Ok(None)` when it is not ELF.
pub fn inspect_file(path: &Path) -> Result<Option<ElfInfo>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(Error::io("opening", path))?;
    let mut magic = [0u8; 4];
    if f.read(&mut magic).map_err(Error::io("reading", path))? < 4 || !is_elf(&magic) {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    inspect(&bytes).map(Some).map_err(|message| Error::Elf {
        path: path.to_owned(),
        message,
    })
}

fn u16_at(b: &[u8], o: usize) -> Result<u16, String> {
    b.get(o..o + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("truncated at {o}"))
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, String> {
    b.get(o..o + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default()))
        .ok_or_else(|| format!("truncated at {o}"))
}

fn u64_at(b: &[u8], o: usize) -> Result<u64, String> {
    b.get(o..o + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default()))
        .ok_or_else(|| format!("truncated at {o}"))
}

fn cstr_at(b: &[u8], o: usize) -> Result<String, String> {
    let s = b
        .get(o..)
        .ok_or_else(|| format!("string offset {o} out of range"))?;
    let end = s.iter().position(|c| *c == 0).unwrap_or(s.len());
    Ok(String::from_utf8_lossy(&s[..end]).into_owned())
}

fn usize_of(v: u64) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("offset {v} too large"))
}

/// Parses an ELF64 little-endian image.
pub fn inspect(b: &[u8]) -> Result<ElfInfo, String> {
    if !is_elf(b) {
        return Err("not an ELF file".into());
    }
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let phoff = usize_of(u64_at(b, 0x20)?)?;
    let shoff = usize_of(u64_at(b, 0x28)?)?;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    let shentsize = usize::from(u16_at(b, 0x3a)?);
    let shnum = usize::from(u16_at(b, 0x3c)?);
    let shstrndx = usize::from(u16_at(b, 0x3e)?);

    let mut info = ElfInfo {
        kind: u16_at(b, 0x10)?,
        ..ElfInfo::default()
    };
    let mut loads = Vec::new(); // (vaddr, offset, filesz)
    let mut dynamic = None; // (offset, size)
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        let (ty, off, vaddr, filesz) = (
            u32_at(b, p)?,
            u64_at(b, p + 8)?,
            u64_at(b, p + 16)?,
            u64_at(b, p + 32)?,
        );
        match ty {
            1 => loads.push((vaddr, off, filesz)),
            2 => dynamic = Some((usize_of(off)?, usize_of(filesz)?)),
            3 => info.interp = Some(cstr_at(b, usize_of(off)?)?),
            _ => {}
        }
    }
    if let Some((off, size)) = dynamic {
        let mut needed = Vec::new();
        let mut runpath = Vec::new();
        let mut strtab = None;
        let mut o = off;
        while o + 16 <= off + size {
            let (tag, val) = (u64_at(b, o)?, u64_at(b, o + 8)?);
            match tag {
                0 => break,
                1 => needed.push(val),
                5 => strtab = Some(val),
                15 | 29 => runpath.push(val),
                _ => {}
            }
            o += 16;
        }
        if !needed.is_empty() || !runpath.is_empty() {
            let vaddr = strtab.ok_or("DT_NEEDED without DT_STRTAB")?;
            let (seg_vaddr, seg_off, _) = loads
                .iter()
                .find(|(v, _, sz)| vaddr >= *v && vaddr < v + sz)
                .ok_or("DT_STRTAB outside every PT_LOAD")?;
            let base = usize_of(vaddr - seg_vaddr + seg_off)?;
            for n in needed {
                info.needed.push(cstr_at(b, base + usize_of(n)?)?);
            }
            for r in runpath {
                info.runpath.extend(
                    cstr_at(b, base + usize_of(r)?)?
                        .split(':')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
        }
    }
    if shoff != 0 && shnum > 0 && shstrndx < shnum {
        let names_off = usize_of(u64_at(b, shoff + shstrndx * shentsize + 24)?)?;
        for i in 0..shnum {
            let s = shoff + i * shentsize;
            let name = cstr_at(b, names_off + u32_at(b, s)? as usize)?;
            let ty = u32_at(b, s + 4)?;
            if ty == 2 {
                info.symtab = true;
            }
            if name.starts_with(".debug_") || name.starts_with(".zdebug_") {
                info.debug = true;
            }
        }
    }
    Ok(info)
}

/// Finds `soname` for a binary at `origin` with run path `runpath`.
pub fn find_library(soname: &str, runpath: &[String], origin: &Path) -> Option<PathBuf> {
    let origin_dir = origin.parent().unwrap_or(Path::new("/"));
    let rp = runpath
        .iter()
        .map(|r| PathBuf::from(r.replace("$ORIGIN", &origin_dir.to_string_lossy())));
    rp.chain(LIB_DIRS.iter().map(PathBuf::from))
        .map(|d| d.join(soname))
        .find(|p| p.exists())
}

/// Every file (host path) `path` needs at run time, transitively: the
/// loader and the libraries, each as found (possibly a symlink).
pub fn runtime_closure(path: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut out = BTreeSet::new();
    let mut todo = vec![path.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(p) = todo.pop() {
        let real = std::fs::canonicalize(&p).map_err(Error::io("resolving", &p))?;
        if !seen.insert(real.clone()) {
            continue;
        }
        let Some(info) = inspect_file(&real)? else {
            continue;
        };
        if let Some(interp) = &info.interp {
            let ip = PathBuf::from(interp);
            if !ip.exists() {
                return Err(Error::Elf {
                    path: p.clone(),
                    message: format!("its loader {interp} is not on this host"),
                });
            }
            out.insert(ip.clone());
            todo.push(ip);
        }
        for so in &info.needed {
            let lib = find_library(so, &info.runpath, &real).ok_or_else(|| Error::Elf {
                path: p.clone(),
                message: format!("needs {so}, which is in none of {LIB_DIRS:?}; install the package that ships it"),
            })?;
            out.insert(lib.clone());
            todo.push(lib);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_loader_and_libraries_of_a_host_binary() {
        // /bin/sh (dash) is on every Debian host and dynamically linked.
        let info = inspect_file(Path::new("/bin/sh")).unwrap().unwrap();
        assert!(
            info.interp
                .as_deref()
                .is_some_and(|i| i.contains("ld-linux")),
            "{info:?}"
        );
        assert!(
            info.needed.iter().any(|n| n.starts_with("libc.so")),
            "{info:?}"
        );
        let closure = runtime_closure(Path::new("/bin/sh")).unwrap();
        assert!(
            closure.iter().any(|p| p.ends_with("libc.so.6")),
            "{closure:?}"
        );
        assert!(inspect_file(Path::new("/etc/hostname")).unwrap().is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(inspect(b"\x7fELF\x02\x01").is_err());
        assert!(inspect(b"#!/bin/sh").is_err());
    }
}
