//! Dump snapshots: a dump (query mode 0, and the first part of mode 2) sends
//! the ring as it was when the dump started. Its snapshot is a queue of shared
//! references to the ring's lines, taken under the lock (one pointer copy per
//! entry), so a slow reader loses nothing when the ring wraps meanwhile.
//!
//! What snapshots keep alive beyond the ring is bounded by a byte budget
//! (`-max-dump-bytes`), which is charged with every snapshot queue (16 bytes
//! per entry) and every line the ring evicted while a snapshot still held it
//! (its length plus [`PINNED_LINE_OVERHEAD`]). Over the budget, the oldest
//! such lines are taken out of the snapshots holding them (oldest first, like
//! the ring) and counted as dropped for those readers. A dump whose queue does
//! not fit even then is served from the live ring instead, like a follower.
//!
//! Every clone and drop of a ring line happens under the state lock, so
//! `Arc::strong_count` tells exactly whether the ring or another snapshot
//! still holds a line.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::reader::Reader;

/// An encoded log line as the ring and the snapshots hold it.
pub(crate) type Line = Arc<[u8]>;

/// Bytes charged per line kept alive only by snapshots, beyond its length:
/// its reference counts and the allocator's rounding.
pub(crate) const PINNED_LINE_OVERHEAD: usize = 32;
/// Bytes charged per entry of a snapshot queue (one shared pointer).
pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Line>();
/// A queue is shrunk once it uses less than a quarter of its capacity.
const SHRINK_RATIO: usize = 4;

/// One dump's snapshot.
#[derive(Debug)]
struct Snapshot {
    reader: Arc<Reader>,
    lines: VecDeque<Line>,
    /// Sequence number of `lines.front()`.
    front_seq: u64,
    /// Entries in the snapshot when it was taken.
    taken: u64,
    /// Entries taken out over the budget.
    dropped: u64,
}

/// What a finished dump could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shortfall {
    /// Entries dropped over the budget.
    pub dropped: u64,
    /// Entries the snapshot held when it was taken.
    pub taken: u64,
}

/// The live snapshots and their budget.
#[derive(Debug)]
pub(crate) struct Snapshots {
    budget: usize,
    by_reader: BTreeMap<u64, Snapshot>,
    /// Bytes charged now: queues plus lines only snapshots keep alive.
    charged: usize,
    /// Entries taken out of snapshots over the budget, since start.
    dropped: u64,
    /// Dumps served from the live ring because their snapshot did not fit.
    refused: u64,
}

/// What a line costs once only snapshots keep it alive.
fn pinned_cost(line: &Line) -> usize {
    line.len() + PINNED_LINE_OVERHEAD
}

/// Drops a line taken out of a snapshot; if it was the last reference, its
/// charge is released.
fn release(charged: &mut usize, line: Line) {
    if Arc::strong_count(&line) == 1 {
        *charged -= pinned_cost(&line);
    }
}

/// Gives back queue capacity a snapshot no longer needs.
fn maybe_shrink(charged: &mut usize, snap: &mut Snapshot) {
    let cap = snap.lines.capacity();
    if cap >= 64 && snap.lines.len() * SHRINK_RATIO < cap {
        snap.lines.shrink_to_fit();
        *charged -= (cap - snap.lines.capacity()) * SLOT_BYTES;
    }
}

impl Snapshots {
    /// No snapshots; at most `budget` bytes kept alive beyond the ring.
    pub fn new(budget: usize) -> Self {
        Snapshots {
            budget,
            by_reader: BTreeMap::new(),
            charged: 0,
            dropped: 0,
            refused: 0,
        }
    }

    /// The ring is dropping `line`: if a snapshot still holds it, only
    /// snapshots keep it alive from now on, and it is charged.
    pub fn on_evict(&mut self, line: &Line) {
        if Arc::strong_count(line) > 1 {
            self.charged += pinned_cost(line);
        }
    }

    /// Takes a snapshot for `reader` of `lines`, the ring's entries oldest
    /// first, numbered from `first_seq` (the oldest entry the ring holds).
    /// Returns false (counted) when its queue does not fit in the budget,
    /// even after dropping evicted lines other snapshots hold.
    pub fn take<'a>(
        &mut self,
        reader: &Arc<Reader>,
        first_seq: u64,
        lines: impl ExactSizeIterator<Item = &'a Line>,
    ) -> bool {
        let need = lines.len() * SLOT_BYTES;
        self.enforce(first_seq, need);
        if self.charged + need > self.budget {
            self.refused += 1;
            return false;
        }
        let mut queue = VecDeque::with_capacity(lines.len());
        queue.extend(lines.cloned());
        self.charged += queue.capacity() * SLOT_BYTES;
        let taken = queue.len() as u64;
        self.by_reader.insert(
            reader.id,
            Snapshot {
                reader: reader.clone(),
                lines: queue,
                front_seq: first_seq,
                taken,
                dropped: 0,
            },
        );
        true
    }

    /// Moves the next lines of `reader`'s snapshot into `out`, stopping once
    /// at least `max_bytes` were copied; returns the number of entries copied
    /// (0 when the snapshot is exhausted or there is none).
    pub fn read(&mut self, reader: &Reader, out: &mut Vec<u8>, max_bytes: usize) -> usize {
        let Some(snap) = self.by_reader.get_mut(&reader.id) else {
            return 0;
        };
        let mut count = 0;
        let start = out.len();
        while out.len() - start < max_bytes {
            let Some(line) = snap.lines.pop_front() else {
                break;
            };
            snap.front_seq += 1;
            out.extend_from_slice(&line);
            release(&mut self.charged, line);
            count += 1;
        }
        maybe_shrink(&mut self.charged, snap);
        reader.add_sent(count as u64);
        count
    }

    /// Ends `reader`'s snapshot (sent or abandoned), releasing what it holds;
    /// returns what it could not deliver, if it had a snapshot.
    pub fn remove(&mut self, reader: &Reader) -> Option<Shortfall> {
        let snap = self.by_reader.remove(&reader.id)?;
        self.charged -= snap.lines.capacity() * SLOT_BYTES;
        for line in snap.lines {
            release(&mut self.charged, line);
        }
        Some(Shortfall {
            dropped: snap.dropped,
            taken: snap.taken,
        })
    }

    /// Drops the oldest evicted lines from the snapshots holding them until
    /// `reserve` more bytes fit in the budget, or no snapshot holds a line
    /// older than `ring_first` (the oldest entry the ring still holds).
    pub fn enforce(&mut self, ring_first: u64, reserve: usize) {
        while self.charged + reserve > self.budget {
            let oldest = self
                .by_reader
                .values()
                .filter(|s| !s.lines.is_empty() && s.front_seq < ring_first)
                .map(|s| s.front_seq)
                .min();
            let Some(seq) = oldest else {
                return;
            };
            // Every snapshot whose front is `seq` holds that same line.
            for snap in self.by_reader.values_mut() {
                if snap.front_seq != seq || snap.lines.is_empty() {
                    continue;
                }
                let line = snap.lines.pop_front().expect("checked non-empty");
                snap.front_seq += 1;
                snap.dropped += 1;
                snap.reader.add_dropped(1);
                self.dropped += 1;
                release(&mut self.charged, line);
                maybe_shrink(&mut self.charged, snap);
            }
        }
    }

    /// The budget (`-max-dump-bytes`).
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes charged now.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// Entries taken out of snapshots over the budget, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Dumps served from the live ring because their snapshot did not fit.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of lines numbered from `first`, evicting into `snaps`.
    struct FakeRing {
        lines: VecDeque<Line>,
        first: u64,
    }

    impl FakeRing {
        fn new(n: usize, len: usize) -> Self {
            let mut r = FakeRing {
                lines: VecDeque::new(),
                first: 0,
            };
            for _ in 0..n {
                r.lines.push_back(Line::from(vec![b'x'; len]));
            }
            r
        }

        /// Pushes `n` lines of `len` bytes, evicting as many.
        fn wrap(&mut self, snaps: &mut Snapshots, n: usize, len: usize) {
            for _ in 0..n {
                self.lines.push_back(Line::from(vec![b'y'; len]));
                let old = self.lines.pop_front().unwrap();
                snaps.on_evict(&old);
                self.first += 1;
                drop(old);
                snaps.enforce(self.first, 0);
            }
        }

        fn take(&self, snaps: &mut Snapshots, reader: &Arc<Reader>) -> bool {
            snaps.take(reader, self.first, self.lines.iter())
        }
    }

    fn read_all(snaps: &mut Snapshots, reader: &Reader) -> Vec<u8> {
        let mut out = Vec::new();
        while snaps.read(reader, &mut out, 10) > 0 {}
        out
    }

    #[test]
    fn snapshot_survives_the_ring_wrapping_and_charges_only_what_it_pins() {
        let mut snaps = Snapshots::new(1 << 20);
        let mut ring = FakeRing::new(10, 5);
        let r = Arc::new(Reader::new(1));
        assert!(ring.take(&mut snaps, &r));
        assert_eq!(snaps.charged(), 10 * SLOT_BYTES);
        ring.wrap(&mut snaps, 4, 5);
        assert_eq!(
            snaps.charged(),
            10 * SLOT_BYTES + 4 * (5 + PINNED_LINE_OVERHEAD)
        );
        assert_eq!(read_all(&mut snaps, &r), vec![b'x'; 50]);
        assert_eq!(r.sent(), 10);
        assert_eq!(snaps.charged(), 10 * SLOT_BYTES);
        let short = snaps.remove(&r).unwrap();
        assert_eq!((short.dropped, short.taken), (0, 10));
        assert_eq!(snaps.charged(), 0);
    }

    #[test]
    fn over_budget_the_oldest_pinned_lines_go_first_and_are_counted() {
        let pinned = 36 + PINNED_LINE_OVERHEAD;
        // Room for two queues of 10 and 12 pinned lines.
        let budget = 20 * SLOT_BYTES + 12 * pinned;
        let mut snaps = Snapshots::new(budget);
        let mut ring = FakeRing::new(10, 36);
        let (old, new) = (Arc::new(Reader::new(1)), Arc::new(Reader::new(2)));
        assert!(ring.take(&mut snaps, &old));
        ring.wrap(&mut snaps, 10, 36); // all of `old` now pinned
        assert!(ring.take(&mut snaps, &new));
        assert_eq!(snaps.charged(), 20 * SLOT_BYTES + 10 * pinned);
        // Two more fit; then each line `new` pins costs one of `old`'s.
        ring.wrap(&mut snaps, 8, 36);
        assert_eq!(snaps.charged(), budget);
        assert_eq!((old.dropped(), new.dropped(), snaps.dropped()), (6, 0, 6));
        // Lines no snapshot holds cost nothing.
        ring.wrap(&mut snaps, 4, 36);
        assert_eq!((old.dropped(), new.dropped()), (8, 0));
        assert_eq!(read_all(&mut snaps, &old).len(), 2 * 36);
        assert_eq!(read_all(&mut snaps, &new).len(), 10 * 36);
        assert_eq!(snaps.remove(&old).unwrap().dropped, 8);
        snaps.remove(&new);
        assert_eq!(snaps.charged(), 0);
    }

    #[test]
    fn snapshots_holding_the_same_lines_drop_them_together() {
        let pinned = 36 + PINNED_LINE_OVERHEAD;
        let budget = 20 * SLOT_BYTES + 4 * pinned;
        let mut snaps = Snapshots::new(budget);
        let mut ring = FakeRing::new(10, 36);
        let (a, b) = (Arc::new(Reader::new(1)), Arc::new(Reader::new(2)));
        assert!(ring.take(&mut snaps, &a));
        assert!(ring.take(&mut snaps, &b));
        ring.wrap(&mut snaps, 10, 36);
        assert!(snaps.charged() <= budget);
        assert_eq!((a.dropped(), b.dropped(), snaps.dropped()), (6, 6, 12));
        assert_eq!(read_all(&mut snaps, &a), read_all(&mut snaps, &b));
        snaps.remove(&a);
        snaps.remove(&b);
        assert_eq!(snaps.charged(), 0);
    }

    #[test]
    fn a_queue_that_does_not_fit_is_refused() {
        let mut snaps = Snapshots::new(5 * SLOT_BYTES);
        let ring = FakeRing::new(6, 1);
        let r = Arc::new(Reader::new(1));
        assert!(!ring.take(&mut snaps, &r));
        assert_eq!((snaps.refused(), snaps.charged()), (1, 0));
        assert!(snaps.remove(&r).is_none());
        // -max-dump-bytes 0: no snapshots of a non-empty ring.
        let mut none = Snapshots::new(0);
        assert!(!FakeRing::new(1, 1).take(&mut none, &r));
    }
}
