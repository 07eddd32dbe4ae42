//! A/B base OS slots, as EVE keeps them: the root file system lives in one
//! of two GPT partitions (`IMGA`, `IMGB`) whose attribute bits carry
//! priority, tries and a successful bit ([`attrs`]). At boot the initramfs
//! runs `outpost-slot select`, which picks a slot ([`select`]), spends a
//! try, and rewrites the GPT crash-safely ([`gpt`]) before mounting it.
//!
//! # Current limitations
//!
//! * Only the root file system is A/B; the kernel and initramfs are not.
//! * 512-byte logical sectors only.

pub mod attrs;
pub mod error;
pub mod gpt;
pub mod select;
pub mod slots;

pub use attrs::SlotState;
pub use error::{Error, Result};
pub use gpt::Gpt;
pub use select::{choose, Choice, Slot, SLOTS};
pub use slots::{boot_slot, find_disk, read_slots, write_slots};
