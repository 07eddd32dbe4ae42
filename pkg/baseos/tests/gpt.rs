//! The GPT writer against `sgdisk` (gdisk): a table sgdisk made is read,
//! its attributes rewritten, and sgdisk must find both copies valid and
//! the bits where `cgpt`/EVE put them. Then every point a power cut can stop
//! the write at (sector by sector, in the order the writer writes) leaves a
//! table that opens as either the old or the new state, and the next write
//! makes both copies good again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use outpost_baseos::gpt::{Health, SECTOR};
use outpost_baseos::{read_slots, write_slots, Gpt, Slot, SlotState};

fn sgdisk(args: &[&str]) -> (bool, String) {
    let out = Command::new("sgdisk")
        .args(args)
        .output()
        .expect("sgdisk (gdisk) not installed: scripts/install-deps.sh installs it");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A 64 MiB disk with IMGA, IMGB, CONFIG, P3; A active, B unused.
fn disk(path: &Path) {
    File::create(path).unwrap().set_len(64 << 20).unwrap();
    let p = path.to_str().unwrap();
    let (ok, out) = sgdisk(&[
        "--clear",
        "--new=1:2048:+16M",
        "--change-name=1:IMGA",
        "--new=2:0:+16M",
        "--change-name=2:IMGB",
        "--new=3:0:+8M",
        "--change-name=3:CONFIG",
        "--new=4:0:0",
        "--change-name=4:P3",
        "--attributes=1:=:0102000000000000",
        p,
    ]);
    assert!(ok, "sgdisk: {out}");
}

fn verify(path: &Path) {
    let (ok, out) = sgdisk(&["-v", path.to_str().unwrap()]);
    assert!(
        ok && out.contains("No problems found"),
        "sgdisk -v {}: {out}",
        path.display()
    );
}

fn states(path: &Path) -> (SlotState, SlotState, Health) {
    let g = Gpt::open(path).unwrap();
    let s = read_slots(&g).unwrap();
    (s[0].state, s[1].state, g.health())
}

#[test]
fn reads_sgdisks_table_and_writes_what_sgdisk_accepts() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("disk.img");
    disk(&p);
    let g = Gpt::open(&p).unwrap();
    let names: Vec<String> = g.entries().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["IMGA", "IMGB", "CONFIG", "P3"]);
    assert_eq!(g.health(), Health::Good);
    assert_eq!(g.find("IMGA").unwrap().offset(), 2048 * SECTOR);
    assert_eq!(g.find("IMGB").unwrap().size(), 16 << 20);
    assert_eq!(
        states(&p),
        (SlotState::ACTIVE, SlotState::UNUSED, Health::Good)
    );

    let mut g = Gpt::open(&p).unwrap();
    let mut slots = read_slots(&g).unwrap();
    slots[1].state = SlotState::UPDATING;
    write_slots(&mut g, &slots).unwrap();
    verify(&p);
    // sgdisk reads the bits where cgpt puts them: 0x13 << 48 = bits 48, 49, 52.
    let (_, out) = sgdisk(&["--attributes=2:show", p.to_str().unwrap()]);
    for bit in [48, 49, 52] {
        assert!(
            out.contains(&format!("2:{bit}")),
            "bit {bit} not set: {out}"
        );
    }
    assert!(!out.contains("2:56"), "{out}");
    assert_eq!(
        states(&p),
        (SlotState::ACTIVE, SlotState::UPDATING, Health::Good)
    );
    // The layout is untouched.
    let (_, info) = sgdisk(&["-i", "2", p.to_str().unwrap()]);
    assert!(info.contains("Partition name: 'IMGB'"), "{info}");
}

fn read_all(p: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(p).unwrap().read_to_end(&mut v).unwrap();
    v
}

#[test]
fn a_cut_at_any_sector_leaves_the_old_or_the_new_state() {
    let d = tempfile::tempdir().unwrap();
    let (old, new) = (d.path().join("old.img"), d.path().join("new.img"));
    disk(&old);
    std::fs::copy(&old, &new).unwrap();
    let mut g = Gpt::open(&new).unwrap();
    let after = vec![
        Slot {
            label: "IMGA".into(),
            state: SlotState::ACTIVE,
        },
        Slot {
            label: "IMGB".into(),
            state: SlotState::UPDATING,
        },
    ];
    write_slots(&mut g, &after).unwrap();
    drop(g);
    let (o, n) = (read_all(&old), read_all(&new));
    let last = o.len() as u64 / SECTOR - 1;
    // The writer's order: backup array, backup header, primary array, primary header.
    let mut order: Vec<u64> = (last - 32..last).collect();
    order.push(last);
    order.extend(2..34);
    order.push(1);
    let changed: Vec<u64> = (0..=last)
        .filter(|l| {
            let r = (*l * SECTOR) as usize..((*l + 1) * SECTOR) as usize;
            o[r.clone()] != n[r]
        })
        .collect();
    assert!(changed.iter().all(|l| order.contains(l)), "{changed:?}");
    let want_old = (SlotState::ACTIVE, SlotState::UNUSED);
    let want_new = (SlotState::ACTIVE, SlotState::UPDATING);
    let cut = d.path().join("cut.img");
    let (mut saw_old, mut saw_new) = (0, 0);
    for k in 0..=order.len() {
        std::fs::copy(&old, &cut).unwrap();
        let mut f = File::options().write(true).open(&cut).unwrap();
        for l in &order[..k] {
            let at = (*l * SECTOR) as usize;
            f.seek(SeekFrom::Start(at as u64)).unwrap();
            f.write_all(&n[at..at + SECTOR as usize]).unwrap();
        }
        drop(f);
        let (a, b, health) = states(&cut);
        if (a, b) == want_old {
            saw_old += 1;
        } else {
            assert_eq!((a, b), want_new, "cut after {k} sectors ({health:?})");
            saw_new += 1;
        }
        // The next write (e.g. the next boot's) makes both copies good.
        let mut g = Gpt::open(&cut).unwrap();
        let slots = read_slots(&g).unwrap();
        write_slots(&mut g, &slots).unwrap();
        verify(&cut);
        assert_eq!(states(&cut), (a, b, Health::Good), "cut after {k} sectors");
    }
    // The primary decides: old until its header sector lands... except when
    // its array was written and its header not yet (then the backup, new, wins).
    assert!(
        saw_old >= 33 && saw_new >= 1,
        "old {saw_old}, new {saw_new}"
    );
}
