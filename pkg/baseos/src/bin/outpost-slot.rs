//! `outpost-slot`: the A/B slot tool. The initramfs runs `select` to pick
//! and spend the boot slot, and `fail` when that slot's root does not
//! mount; `show`, `set` and `current` are for the agent, tests and operators.
//!
//! ```text
//! outpost-slot select [--disk DEV]        prints "<LABEL> <DEV>", notes on stderr
//! outpost-slot fail LABEL [--disk DEV]    marks LABEL failed (priority 0)
//! outpost-slot set LABEL STATE [--disk DEV]   STATE: active|updating|unused|0x<cgpt bits>
//! outpost-slot show [--disk DEV]
//! outpost-slot current                    the slot / was mounted from
//! ```
//! Without `--disk`, the disk is the one under /sys/block whose GPT has IMGA.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use outpost_baseos::gpt::Health;
use outpost_baseos::{boot_slot, choose, find_disk, read_slots, write_slots, Gpt, SlotState};

const USAGE: &str =
    "usage: outpost-slot select|show|current|fail LABEL|set LABEL STATE [--disk DEV]";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let disk = match args.iter().position(|a| a == "--disk") {
        Some(i) if i + 1 < args.len() => {
            let d = args.remove(i + 1);
            args.remove(i);
            Some(PathBuf::from(d))
        }
        Some(_) => return usage(),
        None => None,
    };
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = match words.as_slice() {
        ["select"] => select(disk),
        ["show"] => show(disk),
        ["fail", label] => set(disk, label, SlotState::UNUSED),
        ["set", label, state] => match SlotState::parse(state) {
            Some(s) => set(disk, label, s),
            None => return usage(),
        },
        ["current"] => match boot_slot() {
            Some(s) => {
                println!("{s}");
                Ok(())
            }
            None => Err("the root file system is not a named GPT partition".into()),
        },
        _ => return usage(),
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost-slot: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn open(disk: Option<PathBuf>) -> Result<(PathBuf, Gpt), Box<dyn std::error::Error>> {
    let d = match disk {
        Some(d) => d,
        None => find_disk(Path::new("/sys/block"), Path::new("/dev"))?,
    };
    let g = Gpt::open(&d)?;
    match g.health() {
        Health::Good => {}
        h => eprintln!(
            "outpost-slot: {}: GPT copies: {h:?}; both rewritten",
            d.display()
        ),
    }
    Ok((d, g))
}

fn select(disk: Option<PathBuf>) -> Res {
    let (d, mut g) = open(disk)?;
    let slots = read_slots(&g)?;
    let c = choose(&slots).ok_or("no slots")?;
    for n in &c.notes {
        eprintln!("outpost-slot: {n}");
    }
    write_slots(&mut g, &c.after)?;
    let before = &slots
        .iter()
        .find(|s| s.label == c.label)
        .ok_or("slot")?
        .state;
    eprintln!("outpost-slot: booting {} (was {before})", c.label);
    println!("{} {}", c.label, d.display());
    Ok(())
}

fn show(disk: Option<PathBuf>) -> Res {
    let (d, g) = open(disk)?;
    println!("disk {}", d.display());
    for s in read_slots(&g)? {
        println!("{} {}", s.label, s.state);
    }
    Ok(())
}

fn set(disk: Option<PathBuf>, label: &str, state: SlotState) -> Res {
    let (_, mut g) = open(disk)?;
    let mut slots = read_slots(&g)?;
    let s = slots
        .iter_mut()
        .find(|s| s.label == label)
        .ok_or_else(|| format!("no slot named {label} (IMGA or IMGB)"))?;
    s.state = state;
    write_slots(&mut g, &slots)?;
    eprintln!("outpost-slot: {label} is now {state}");
    Ok(())
}
