//! EVE's (ChromeOS `cgpt`'s) slot state in the GPT partition attribute
//! bits 48-63: priority in bits 48-51, tries left in 52-55, successful in
//! bit 56. EVE's named states, as `cgpt` prints the 16 high bits: active
//! `0x102`, updating `0x13`, in progress `0x3`, unused `0`.

use std::fmt;

const PRIORITY_SHIFT: u32 = 48;
const TRIES_SHIFT: u32 = 52;
const SUCCESSFUL_BIT: u32 = 56;
/// The bits this encoding owns (48-56); the others are left as they are.
const MASK: u64 = (0xF << PRIORITY_SHIFT) | (0xF << TRIES_SHIFT) | (1 << SUCCESSFUL_BIT);

/// A slot's boot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotState {
    /// 0 (never boot) to 15; the highest bootable slot boots.
    pub priority: u8,
    /// Boots left before the slot counts as failed (0-15); only matters
    /// while the slot is not `successful`.
    pub tries: u8,
    /// The slot booted and was committed.
    pub successful: bool,
}

impl SlotState {
    /// EVE's "active": priority 2, successful (`0x102`).
    pub const ACTIVE: SlotState = SlotState {
        priority: 2,
        tries: 0,
        successful: true,
    };
    /// EVE's "updating": priority 3, one try (`0x13`).
    pub const UPDATING: SlotState = SlotState {
        priority: 3,
        tries: 1,
        successful: false,
    };
    /// EVE's "unused" (and "failed"): never booted (`0`).
    pub const UNUSED: SlotState = SlotState {
        priority: 0,
        tries: 0,
        successful: false,
    };

    /// The state held in a GPT entry's 64 attribute bits.
    pub fn from_attributes(attrs: u64) -> SlotState {
        SlotState {
            priority: ((attrs >> PRIORITY_SHIFT) & 0xF) as u8,
            tries: ((attrs >> TRIES_SHIFT) & 0xF) as u8,
            successful: (attrs >> SUCCESSFUL_BIT) & 1 == 1,
        }
    }

    /// `attrs` with this state's bits replaced (other bits kept; priority
    /// and tries saturate at 15).
    pub fn apply(self, attrs: u64) -> u64 {
        (attrs & !MASK)
            | (u64::from(self.priority.min(15)) << PRIORITY_SHIFT)
            | (u64::from(self.tries.min(15)) << TRIES_SHIFT)
            | (u64::from(self.successful) << SUCCESSFUL_BIT)
    }

    /// The 16 high attribute bits, as `cgpt` and EVE write them (`0x102`).
    pub fn cgpt(self) -> u16 {
        (self.apply(0) >> PRIORITY_SHIFT) as u16
    }

    /// Parses a named state (`active`, `updating`, `unused`, `failed`) or
    /// the 16 high bits in hex (`0x13`).
    pub fn parse(s: &str) -> Option<SlotState> {
        match s {
            "active" => Some(SlotState::ACTIVE),
            "updating" => Some(SlotState::UPDATING),
            "unused" | "failed" => Some(SlotState::UNUSED),
            _ => {
                let hex = s.strip_prefix("0x")?;
                let v = u16::from_str_radix(hex, 16).ok()?;
                (v >> 9 == 0).then(|| SlotState::from_attributes(u64::from(v) << PRIORITY_SHIFT))
            }
        }
    }

    /// Bootable: some priority, and either committed or tries left.
    pub fn bootable(self) -> bool {
        self.priority > 0 && (self.successful || self.tries > 0)
    }
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#x} (priority {}, tries {}, {})",
            self.cgpt(),
            self.priority,
            self.tries,
            if self.successful {
                "successful"
            } else {
                "not successful"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eve_named_states_have_eves_numbers() {
        for (state, cgpt) in [
            (SlotState::ACTIVE, 0x102),
            (SlotState::UPDATING, 0x13),
            (SlotState::UNUSED, 0),
            (
                SlotState {
                    priority: 3,
                    tries: 0,
                    successful: false,
                },
                0x3,
            ),
        ] {
            assert_eq!(state.cgpt(), cgpt, "{state:?}");
            assert_eq!(state.apply(0), u64::from(cgpt) << 48);
            assert_eq!(SlotState::from_attributes(state.apply(0)), state);
            assert_eq!(SlotState::parse(&format!("{cgpt:#x}")), Some(state));
        }
    }

    #[test]
    fn bit_positions_are_cgpts() {
        let s = SlotState {
            priority: 0xA,
            tries: 0x5,
            successful: true,
        };
        assert_eq!(s.apply(0), (0xA << 48) | (0x5 << 52) | (1 << 56));
    }

    #[test]
    fn other_attribute_bits_are_kept() {
        // Bit 0 (platform required), bit 2 (legacy BIOS bootable), bit 60 (read-only).
        let other = 1 | (1 << 2) | (1 << 60);
        let attrs = SlotState::ACTIVE.apply(other | (0xF << 52));
        assert_eq!(attrs & !MASK, other);
        assert_eq!(SlotState::from_attributes(attrs), SlotState::ACTIVE);
    }

    #[test]
    fn values_saturate_and_bad_input_is_refused() {
        let s = SlotState {
            priority: 200,
            tries: 99,
            successful: false,
        };
        assert_eq!(
            SlotState::from_attributes(s.apply(0)),
            SlotState {
                priority: 15,
                tries: 15,
                successful: false
            }
        );
        for bad in ["", "0x", "0x200", "13", "actives", "0xzz"] {
            assert_eq!(SlotState::parse(bad), None, "{bad}");
        }
        assert_eq!(SlotState::parse("failed"), Some(SlotState::UNUSED));
    }

    #[test]
    fn bootable_needs_priority_and_tries_or_success() {
        assert!(SlotState::ACTIVE.bootable());
        assert!(SlotState::UPDATING.bootable());
        assert!(!SlotState::UNUSED.bootable());
        let exhausted = SlotState {
            priority: 3,
            tries: 0,
            successful: false,
        };
        assert!(!exhausted.bootable());
        let committed_but_off = SlotState {
            priority: 0,
            tries: 0,
            successful: true,
        };
        assert!(!committed_but_off.bootable());
    }
}
