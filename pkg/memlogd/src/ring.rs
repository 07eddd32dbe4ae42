//! The ring buffer: entries numbered by a sequence number, bounded by count
//! and by bytes, evicted oldest first. Followers hold a sequence number (a
//! cursor) instead of a copy of the entries; dumps take a snapshot
//! (`server/snapshot.rs`) of shared references.

use std::collections::VecDeque;

/// Something the ring can hold and account for.
pub(crate) trait RingItem {
    /// Bytes this item counts against the byte bound.
    fn size(&self) -> usize;
}

/// A bounded FIFO of items with monotonically increasing sequence numbers.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    items: VecDeque<T>,
    first_seq: u64,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

/// What a reader gets when it asks for items from its cursor on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Slice {
    /// Items between the cursor and the oldest one still held: lost for the reader.
    pub skipped: u64,
    /// Sequence number of the first item returned.
    pub start: u64,
    /// Number of items returned.
    pub count: usize,
}

impl<T: RingItem> Ring<T> {
    /// An empty ring bounded by `max_lines` items and `max_bytes` bytes (both ≥ 1).
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Ring {
            items: VecDeque::new(),
            first_seq: 0,
            bytes: 0,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// Appends `item`, then evicts from the front until both bounds hold again,
    /// handing each evicted item to `evicted`. An item larger than the byte
    /// bound on its own is evicted immediately (readers following live still
    /// get it if they keep up).
    pub fn push(&mut self, item: T, mut evicted: impl FnMut(T)) {
        self.bytes += item.size();
        self.items.push_back(item);
        while self.items.len() > self.max_lines || self.bytes > self.max_bytes {
            let Some(old) = self.items.pop_front() else {
                break;
            };
            self.bytes -= old.size();
            self.first_seq += 1;
            evicted(old);
        }
    }

    /// Sequence number of the oldest item held (== `next_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Sequence number the next pushed item will get.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.items.len() as u64
    }

    /// Number of items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The items held, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> {
        self.items.iter()
    }

    /// Items from `cursor` (or the oldest held, if that was evicted) up to but
    /// not including `end`, stopping after `max_items` or once at least
    /// `max_bytes` were returned; `visit` sees each one.
    pub fn read_from(
        &self,
        cursor: u64,
        end: u64,
        max_items: usize,
        max_bytes: usize,
        mut visit: impl FnMut(&T),
    ) -> Slice {
        let start = cursor.max(self.first_seq);
        let skipped = start - cursor;
        let end = end.min(self.next_seq());
        let mut count = 0;
        let mut bytes = 0;
        if start < end {
            let from = (start - self.first_seq) as usize;
            let to = (end - self.first_seq) as usize;
            for item in self.items.range(from..to) {
                if count >= max_items || bytes >= max_bytes {
                    break;
                }
                visit(item);
                bytes += item.size();
                count += 1;
            }
        }
        Slice {
            skipped,
            start,
            count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Item(usize);
    impl RingItem for Item {
        fn size(&self) -> usize {
            self.0
        }
    }

    fn fill(ring: &mut Ring<Item>, sizes: &[usize]) -> Vec<usize> {
        let mut gone = Vec::new();
        for &s in sizes {
            ring.push(Item(s), |e| gone.push(e.0));
        }
        gone
    }

    #[test]
    fn evicts_oldest_by_line_bound() {
        let mut r = Ring::new(3, 1000);
        let gone = fill(&mut r, &[1, 2, 3, 4, 5]);
        assert_eq!(gone, [1, 2]);
        assert_eq!(
            (r.len(), r.bytes(), r.first_seq(), r.next_seq()),
            (3, 12, 2, 5)
        );
        let held: Vec<usize> = r.iter().map(|i| i.0).collect();
        assert_eq!(held, [3, 4, 5]);
    }

    #[test]
    fn evicts_oldest_by_byte_bound() {
        let mut r = Ring::new(100, 10);
        let gone = fill(&mut r, &[4, 4, 4, 1, 9]);
        assert_eq!(gone, [4, 4, 4]);
        assert_eq!((r.len(), r.bytes()), (2, 10));
    }

    #[test]
    fn oversized_item_evicts_everything_including_itself() {
        let mut r = Ring::new(100, 10);
        let gone = fill(&mut r, &[3, 11]);
        assert_eq!(gone, [3, 11]);
        assert_eq!(
            (r.len(), r.bytes(), r.first_seq(), r.next_seq()),
            (0, 0, 2, 2)
        );
    }

    #[test]
    fn bounds_hold_after_every_push() {
        let mut r = Ring::new(7, 50);
        for i in 0..1000 {
            r.push(Item(i % 13), |_| {});
            assert!(r.len() <= 7 && r.bytes() <= 50);
        }
        assert_eq!(r.next_seq(), 1000);
    }

    #[test]
    fn read_from_reports_skipped_and_limits() {
        let mut r = Ring::new(4, 1000);
        fill(&mut r, &[1, 2, 3, 4, 5, 6]); // holds seq 2..6 = sizes 3,4,5,6
        let mut seen = Vec::new();
        let s = r.read_from(0, u64::MAX, 10, 1000, |i| seen.push(i.0));
        assert_eq!(
            s,
            Slice {
                skipped: 2,
                start: 2,
                count: 4
            }
        );
        assert_eq!(seen, [3, 4, 5, 6]);

        seen.clear();
        let s = r.read_from(3, u64::MAX, 2, 1000, |i| seen.push(i.0));
        assert_eq!(
            s,
            Slice {
                skipped: 0,
                start: 3,
                count: 2
            }
        );
        assert_eq!(seen, [4, 5]);

        seen.clear();
        let s = r.read_from(2, 4, 10, 1000, |i| seen.push(i.0));
        assert_eq!(s.count, 2);
        assert_eq!(seen, [3, 4]);

        // byte limit: stops once at least max_bytes were returned
        seen.clear();
        r.read_from(2, u64::MAX, 10, 7, |i| seen.push(i.0));
        assert_eq!(seen, [3, 4]);

        // at the end: nothing
        let s = r.read_from(6, u64::MAX, 10, 1000, |_| panic!());
        assert_eq!(
            s,
            Slice {
                skipped: 0,
                start: 6,
                count: 0
            }
        );
    }
}
