//! Which slot boots: the highest-priority bootable slot (committed, or
//! with tries left); ties go to the first in table order. A slot that is
//! not committed spends one try. A slot with priority but no tries and no
//! commit was booted and never committed (a hang, a crash, a watchdog
//! reset): it is marked failed so the reason stays visible.

use crate::attrs::SlotState;

/// The slot partitions, in table order.
pub const SLOTS: [&str; 2] = ["IMGA", "IMGB"];

/// A slot as read from the GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// GPT name (`IMGA`, `IMGB`).
    pub label: String,
    /// Its state.
    pub state: SlotState,
}

/// The decision for this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The slot to boot.
    pub label: String,
    /// Every slot's state to write before booting it (same order as given).
    pub after: Vec<Slot>,
    /// Slots passed over or marked failed, and why.
    pub notes: Vec<String>,
}

/// Chooses the slot to boot from `slots`. Never refuses: with no bootable
/// slot it falls back to a committed one, else the first.
pub fn choose(slots: &[Slot]) -> Option<Choice> {
    let mut after = slots.to_vec();
    let mut notes = Vec::new();
    for s in &mut after {
        if s.state.priority > 0 && !s.state.bootable() {
            notes.push(format!(
                "{}: booted without being committed and has no tries left ({}); marked failed",
                s.label, s.state
            ));
            s.state = SlotState::UNUSED;
        }
    }
    let mut best: Option<usize> = None;
    for (i, s) in after.iter().enumerate() {
        if s.state.bootable() && best.is_none_or(|b| s.state.priority > after[b].state.priority) {
            best = Some(i);
        }
    }
    let i = match best {
        Some(i) => i,
        None => {
            let i = slots.iter().position(|s| s.state.successful).unwrap_or(0);
            notes.push(format!(
                "no bootable slot; trying {} as a last resort",
                slots.get(i)?.label
            ));
            i
        }
    };
    let chosen = &mut after[i];
    if !chosen.state.successful && chosen.state.tries > 0 {
        chosen.state.tries -= 1;
    }
    Some(Choice {
        label: chosen.label.clone(),
        after,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(priority: u8, tries: u8, successful: bool) -> SlotState {
        SlotState {
            priority,
            tries,
            successful,
        }
    }

    fn slots(a: SlotState, b: SlotState) -> Vec<Slot> {
        vec![
            Slot {
                label: "IMGA".into(),
                state: a,
            },
            Slot {
                label: "IMGB".into(),
                state: b,
            },
        ]
    }

    #[test]
    fn table() {
        let (active, updating, unused) =
            (SlotState::ACTIVE, SlotState::UPDATING, SlotState::UNUSED);
        // (A, B) → chosen, (A, B) after, a note expected
        let cases = [
            ("fresh image", active, unused, "IMGA", active, unused, false),
            (
                "update pending",
                active,
                updating,
                "IMGB",
                active,
                st(3, 0, false),
                false,
            ),
            (
                "two tries",
                active,
                st(3, 2, false),
                "IMGB",
                active,
                st(3, 1, false),
                false,
            ),
            (
                "update never committed",
                active,
                st(3, 0, false),
                "IMGA",
                active,
                unused,
                true,
            ),
            ("B committed", unused, active, "IMGB", unused, active, false),
            (
                "B committed, A lowered",
                st(1, 0, true),
                active,
                "IMGB",
                st(1, 0, true),
                active,
                false,
            ),
            (
                "tie goes to table order",
                active,
                active,
                "IMGA",
                active,
                active,
                false,
            ),
            (
                "nothing bootable, B committed",
                st(0, 0, false),
                st(0, 0, true),
                "IMGB",
                unused,
                st(0, 0, true),
                true,
            ),
            (
                "nothing at all",
                unused,
                unused,
                "IMGA",
                unused,
                unused,
                true,
            ),
            (
                "A in progress too",
                st(3, 0, false),
                st(3, 0, false),
                "IMGA",
                unused,
                unused,
                true,
            ),
        ];
        for (name, a, b, want, a2, b2, note) in cases {
            let c = choose(&slots(a, b)).unwrap();
            assert_eq!(c.label, want, "{name}");
            assert_eq!(c.after, slots(a2, b2), "{name}");
            assert_eq!(!c.notes.is_empty(), note, "{name}: {:?}", c.notes);
        }
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn an_update_gets_exactly_its_tries() {
        let mut s = slots(SlotState::ACTIVE, st(3, 3, false));
        let mut booted = Vec::new();
        for _ in 0..5 {
            let c = choose(&s).unwrap();
            booted.push(c.label.clone());
            s = c.after;
        }
        assert_eq!(booted, ["IMGB", "IMGB", "IMGB", "IMGA", "IMGA"]);
        assert_eq!(s[1].state, SlotState::UNUSED);
    }
}
