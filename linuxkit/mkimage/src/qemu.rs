//! The QEMU command line that boots a built image directly (`-kernel` /
//! `-initrd`), with the disk on virtio, user networking restricted so the
//! guest reaches only what is forwarded to it, and the serial console on
//! stdio. Shared by `outpost-mkimage run` and the boot test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::accel::Accel;

/// A TCP service of the host the guest may reach at `guest_ip:guest_port`
/// (QEMU `guestfwd`): later, the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestForward {
    /// Address the guest connects to (in 10.0.2.0/24, e.g. 10.0.2.100).
    pub guest_ip: String,
    /// Port the guest connects to.
    pub guest_port: u16,
    /// Host port on 127.0.0.1 it is forwarded to.
    pub host_port: u16,
}

impl GuestForward {
    /// The `-netdev user` option. QEMU's `…-tcp:HOST:PORT` form connects
    /// once, when QEMU starts (failing if nothing listens yet), and carries a
    /// single stream for every guest connection; the `…-cmd:` form starts a
    /// relay per guest connection, which TLS clients that open several
    /// connections need. The relay is busybox's `nc` (busybox-static).
    pub fn netdev_option(&self) -> String {
        format!(
            ",guestfwd=tcp:{}:{}-cmd:busybox nc 127.0.0.1 {}",
            self.guest_ip, self.guest_port, self.host_port
        )
    }
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct QemuOptions {
    /// `vmlinuz`.
    pub kernel: PathBuf,
    /// `initrd.img`.
    pub initrd: PathBuf,
    /// The raw disk image.
    pub disk: PathBuf,
    /// Kernel command line.
    pub cmdline: String,
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// Guest CPUs wanted (TCG gives one: [`Accel::vcpus`]).
    pub cpus: u32,
    /// Guest network: restricted user networking with these forwards.
    pub forwards: Vec<GuestForward>,
    /// A person at a terminal: the QEMU monitor shares stdio with the
    /// console (Ctrl-A X quits, Ctrl-C reaches the guest). Off for tests,
    /// which drive the console through pipes.
    pub interactive: bool,
}

impl QemuOptions {
    /// Options for the image in `dir` (as `outpost-mkimage build` writes it).
    pub fn for_image(dir: &Path) -> QemuOptions {
        let cmdline = std::fs::read_to_string(dir.join("cmdline")).unwrap_or_default();
        QemuOptions {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            disk: dir.join("disk.img"),
            cmdline: cmdline.trim().to_owned(),
            memory_mib: 1024,
            cpus: 2,
            forwards: Vec::new(),
            interactive: false,
        }
    }

    /// The `qemu-system-x86_64` command under `accel` (stdio is the serial
    /// console; the caller sets up stdin/stdout). [`crate::accel`] says
    /// which accelerator works on this host.
    pub fn command(&self, accel: Accel) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-accel", accel.qemu_arg()]);
        let mut netdev = String::from("user,id=n0,restrict=on");
        for f in &self.forwards {
            netdev.push_str(&f.netdev_option());
        }
        c.args(["-machine", "q35", "-cpu", "max"])
            .args([
                "-m",
                &self.memory_mib.to_string(),
                "-smp",
                &accel.vcpus(self.cpus).to_string(),
            ])
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(&self.initrd)
            .args(["-append", &self.cmdline])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio,cache=writeback",
                self.disk.display()
            ))
            .args(["-netdev", &netdev])
            // No option ROM: it only matters for PXE, which nothing here uses.
            .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
            .args(["-device", "virtio-rng-pci"])
            // The watchdog outpostd feeds; when it fires, the guest resets
            // (which `-no-reboot` below turns into QEMU exiting).
            .args(["-device", "i6300esb", "-action", "watchdog=reset"])
            .args(["-display", "none", "-vga", "none"])
            // `poweroff`/`reboot` in the guest end QEMU: the caller decides what is next.
            .arg("-no-reboot");
        if self.interactive {
            c.args(["-serial", "mon:stdio"]);
        } else {
            c.args(["-monitor", "none", "-serial", "stdio"]);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let mut o = QemuOptions::for_image(Path::new("/img"));
        o.cmdline = "console=ttyS0".into();
        o.forwards.push(GuestForward {
            guest_ip: "10.0.2.100".into(),
            guest_port: 8443,
            host_port: 18443,
        });
        let c = o.command(Accel::Tcg);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(
            after("-netdev"),
            "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8443-cmd:busybox nc 127.0.0.1 18443"
        );
        assert_eq!(after("-kernel"), "/img/vmlinuz");
        assert_eq!(after("-append"), "console=ttyS0");
        assert!(after("-drive").starts_with("file=/img/disk.img,format=raw,if=virtio"));
        assert_eq!(after("-serial"), "stdio");
        assert_eq!(after("-accel"), "tcg");
        assert_eq!(after("-smp"), "1");
        let kvm: Vec<String> = o
            .command(Accel::Kvm)
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(kvm[..2], ["-accel", "kvm"]);
        let smp = kvm.iter().position(|a| a == "-smp").unwrap() + 1;
        assert_eq!(kvm[smp], "2");
        assert!(args.contains(&"-no-reboot".to_string()));
        assert_eq!(after("-action"), "watchdog=reset");
        assert!(args.contains(&"i6300esb".to_string()));
    }
}
