//! The slots on a real disk: finding the disk, reading and writing the
//! slot states, and which slot the running system booted from.

use std::path::{Path, PathBuf};

use crate::attrs::SlotState;
use crate::error::{Error, Result};
use crate::gpt::Gpt;
use crate::select::{Slot, SLOTS};

/// The whole disk under `/sys/block` whose GPT has a partition named
/// `IMGA` (read directly, so a disk whose primary table is damaged is
/// found too).
pub fn find_disk(sys_block: &Path, dev: &Path) -> Result<PathBuf> {
    let mut looked = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(sys_block)
        .map_err(Error::io("listing", sys_block))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    for n in names {
        let d = dev.join(&n);
        if Gpt::open(&d).is_ok_and(|g| g.find(SLOTS[0]).is_ok()) {
            return Ok(d);
        }
        looked.push(n);
    }
    Err(Error::NoDisk {
        label: SLOTS[0].into(),
        looked: if looked.is_empty() {
            "none".into()
        } else {
            looked.join(", ")
        },
    })
}

/// The slots of `gpt`, in [`SLOTS`] order; a missing `IMGB` is an error.
pub fn read_slots(gpt: &Gpt) -> Result<Vec<Slot>> {
    SLOTS
        .iter()
        .map(|l| {
            Ok(Slot {
                label: (*l).into(),
                state: SlotState::from_attributes(gpt.find(l)?.attributes),
            })
        })
        .collect()
}

/// Stores `slots`' states in `gpt` and writes it (both copies).
pub fn write_slots(gpt: &mut Gpt, slots: &[Slot]) -> Result<()> {
    for s in slots {
        let e = gpt.find(&s.label)?;
        gpt.set_attributes(e.index, s.state.apply(e.attributes));
    }
    gpt.write()
}

/// The slot the running system booted from: the GPT name of the device
/// mounted on `/` (`/proc/self/mountinfo`, `/sys/class/block/<dev>/uevent`).
/// `None` when the root is not a named partition (a container, a dev host).
pub fn boot_slot() -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let dev = root_device(&info)?;
    let uevent = std::fs::read_to_string(format!("/sys/class/block/{dev}/uevent")).ok()?;
    partname(&uevent)
}

/// The kernel name (`vda1`) of the device mounted on `/` in a mountinfo text.
fn root_device(mountinfo: &str) -> Option<String> {
    mountinfo
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some("/"))
        .filter_map(|l| {
            let after = l.split_once(" - ")?.1;
            let source = after.split(' ').nth(1)?;
            source.strip_prefix("/dev/").map(str::to_owned)
        })
        .next_back()
}

fn partname(uevent: &str) -> Option<String> {
    uevent
        .lines()
        .find_map(|l| l.strip_prefix("PARTNAME="))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_device_is_the_last_mount_on_slash() {
        let info = "1 0 0:2 / / rw - rootfs rootfs rw\n\
                    15 1 254:1 / / ro,relatime - squashfs /dev/vda1 ro,errors=continue\n\
                    16 15 254:3 / /persist rw - ext4 /dev/vda3 rw\n";
        assert_eq!(root_device(info).as_deref(), Some("vda1"));
        let overlay = "25 1 0:30 / / rw - overlay overlay rw,lowerdir=/x\n";
        assert_eq!(root_device(overlay), None);
        assert_eq!(
            partname("MAJOR=254\nDEVNAME=vda2\nPARTNAME=IMGB\n").as_deref(),
            Some("IMGB")
        );
        assert_eq!(partname("DEVNAME=sda\n"), None);
    }
}
