//! The batcher's rules with plain values and an injected clock.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::*;

const LIMITS: Limits = Limits {
    max_lines: 3,
    max_bytes: 10_000,
    max_wait: Duration::from_secs(5),
};

/// A line stamped `secs` after the epoch (plus `nanos`), with message `msg`.
fn at(secs: i64, nanos: u32, msg: &str) -> Line {
    Line {
        time: OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .replace_nanosecond(nanos)
            .unwrap(),
        source: "guest_vm-1a2b.1.0".into(),
        msg: msg.into(),
    }
}

fn msgs(b: &Batch) -> Vec<String> {
    b.lines
        .iter()
        .map(|l| {
            let e: outpost_api::cloud::LogEntry = serde_json::from_str(l).unwrap();
            e.msg
        })
        .collect()
}

/// Feeds `lines` at `now` and then flushes; returns every batch cut.
fn run(b: &mut Batcher, lines: Vec<Line>, now: Instant) -> Vec<Batch> {
    let mut out: Vec<Batch> = lines.into_iter().filter_map(|l| b.push(l, now)).collect();
    out.extend(b.flush());
    out
}

fn all_msgs(batches: &[Batch]) -> Vec<String> {
    batches.iter().flat_map(msgs).collect()
}

#[test]
fn app_of_source_names_the_uuid() {
    assert_eq!(app_of_source("guest_vm-1a2b.1.0").as_deref(), Some("1a2b"));
    assert_eq!(
        app_of_source("guest_vm_err-1a2b.1.0").as_deref(),
        Some("1a2b")
    );
    assert_eq!(app_of_source("outpostd"), None);
}

#[test]
fn lines_are_json_log_entries_with_their_app() {
    let mut b = Batcher::new(LIMITS, Cursor::default());
    let batch = run(&mut b, vec![at(1_700_000_000, 5, "hello")], Instant::now());
    let e: outpost_api::cloud::LogEntry = serde_json::from_str(&batch[0].lines[0]).unwrap();
    assert_eq!(e.msg, "hello");
    assert_eq!(e.app.as_deref(), Some("1a2b"));
    assert_eq!(e.source, "guest_vm-1a2b.1.0");
    assert_eq!(e.time, "2023-11-14T22:13:20.000000005Z");
}

#[test]
fn line_bound_cuts_batches() {
    let mut b = Batcher::new(LIMITS, Cursor::default());
    let lines = (0..7).map(|i| at(100 + i, 0, &format!("l{i}"))).collect();
    let batches = run(&mut b, lines, Instant::now());
    let sizes: Vec<usize> = batches.iter().map(|b| b.lines.len()).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        all_msgs(&batches),
        (0..7).map(|i| format!("l{i}")).collect::<Vec<_>>()
    );
    // Each batch's cursor is that of its own last line.
    assert_eq!(
        batches[0].cursor,
        Cursor {
            nanos: 102_000_000_000,
            same: 1
        }
    );
    assert_eq!(
        batches[2].cursor,
        Cursor {
            nanos: 106_000_000_000,
            same: 1
        }
    );
}

#[test]
fn byte_bound_is_never_passed_except_by_one_long_line() {
    let one = serde_json::to_string(&outpost_api::cloud::LogEntry {
        time: "1970-01-01T00:01:40Z".into(),
        source: "guest_vm-1a2b.1.0".into(),
        app: Some("1a2b".into()),
        msg: "x".repeat(100),
    })
    .unwrap()
    .len();
    let limits = Limits {
        max_lines: 1000,
        max_bytes: one * 2 + one / 2,
        max_wait: Duration::from_secs(5),
    };
    let mut b = Batcher::new(limits, Cursor::default());
    let mut lines: Vec<Line> = (0..5).map(|i| at(100 + i, 0, &"x".repeat(100))).collect();
    lines.push(at(200, 0, &"y".repeat(limits.max_bytes * 2)));
    lines.push(at(201, 0, "z"));
    let batches = run(&mut b, lines, Instant::now());
    let sizes: Vec<usize> = batches.iter().map(|b| b.lines.len()).collect();
    assert_eq!(sizes, [2, 2, 1, 1, 1]);
    for batch in &batches {
        let bytes: usize = batch.lines.iter().map(String::len).sum();
        assert!(
            bytes <= limits.max_bytes || batch.lines.len() == 1,
            "batch of {} lines has {bytes} bytes",
            batch.lines.len()
        );
    }
    assert_eq!(all_msgs(&batches).len(), 7);
}

#[test]
fn time_bound_cuts_after_max_wait_of_the_first_line() {
    let t0 = Instant::now();
    let mut b = Batcher::new(LIMITS, Cursor::default());
    assert_eq!(b.wait(t0), None, "nothing pending, nothing due");
    assert!(b.push(at(100, 0, "a"), t0).is_none());
    assert!(b
        .push(at(101, 0, "b"), t0 + Duration::from_secs(3))
        .is_none());
    assert_eq!(
        b.wait(t0 + Duration::from_secs(3)),
        Some(Duration::from_secs(2))
    );
    assert!(b.due(t0 + Duration::from_millis(4999)).is_none());
    let batch = b.due(t0 + Duration::from_secs(5)).expect("due at max_wait");
    assert_eq!(msgs(&batch), ["a", "b"]);
    assert_eq!(b.wait(t0 + Duration::from_secs(5)), None);
    // The next batch's clock starts at its own first line.
    let t1 = t0 + Duration::from_secs(9);
    assert!(b.push(at(102, 0, "c"), t1).is_none());
    assert!(b.due(t1 + Duration::from_secs(4)).is_none());
    assert!(b.due(t1 + Duration::from_secs(5)).is_some());
}

#[test]
fn an_empty_flush_yields_nothing() {
    let t0 = Instant::now();
    let mut b = Batcher::new(LIMITS, Cursor::default());
    assert_eq!(b.flush(), None);
    assert_eq!(b.due(t0 + Duration::from_secs(3600)), None);
    // Lines the cursor covers open no batch either.
    let mut b = Batcher::new(
        LIMITS,
        Cursor {
            nanos: 200_000_000_000,
            same: 1,
        },
    );
    assert!(b.push(at(150, 0, "old"), t0).is_none());
    assert_eq!(b.pending(), 0);
    assert_eq!(b.wait(t0), None);
    assert_eq!(b.flush(), None);
}

/// The ring as memlogd replays it: several lines share a timestamp.
fn ring() -> Vec<Line> {
    vec![
        at(100, 0, "a"),
        at(100, 0, "b"),
        at(101, 0, "c"),
        at(102, 7, "d"),
        at(102, 7, "e"),
        at(102, 7, "f"),
        at(103, 0, "g"),
    ]
}

#[test]
fn a_restart_at_any_queued_cursor_loses_and_duplicates_nothing() {
    let all: Vec<String> = ring().iter().map(|l| l.msg.clone()).collect();
    let now = Instant::now();
    // Cut after every possible prefix: what a crash right after queueing
    // that batch would leave as the queue's cursor.
    for cut in 0..=all.len() {
        let mut first = Batcher::new(LIMITS, Cursor::default());
        let mut queued: Vec<String> = Vec::new();
        let mut cursor = Cursor::default();
        for l in ring().into_iter().take(cut) {
            if let Some(b) = first.push(l, now) {
                queued.extend(msgs(&b));
                cursor = b.cursor;
            }
        }
        if let Some(b) = first.flush() {
            queued.extend(msgs(&b));
            cursor = b.cursor;
        }
        // Restart: same boot, the ring is replayed from its oldest line.
        let resume = resume_cursor(Some("boot-1\n"), "boot-1", cursor);
        let mut second = Batcher::new(LIMITS, resume);
        let mut replay = ring();
        replay.push(at(104, 0, "h"));
        let later = run(&mut second, replay, now);
        queued.extend(all_msgs(&later));
        let mut want = all.clone();
        want.push("h".into());
        assert_eq!(queued, want, "restart after {cut} lines");
    }
}

#[test]
fn a_new_boot_starts_from_the_beginning() {
    let queued = Cursor {
        nanos: 500_000_000_000,
        same: 2,
    };
    assert_eq!(resume_cursor(Some("boot-1"), "boot-1", queued), queued);
    assert_eq!(
        resume_cursor(Some("boot-1"), "boot-2", queued),
        Cursor::default()
    );
    assert_eq!(resume_cursor(None, "boot-2", queued), Cursor::default());
    assert_eq!(resume_cursor(Some(""), "", queued), Cursor::default());
    // After a reboot with a clock that went back, the new boot's lines are
    // all shipped although they are stamped before the old cursor.
    let mut b = Batcher::new(LIMITS, resume_cursor(Some("boot-1"), "boot-2", queued));
    let batches = run(&mut b, vec![at(10, 0, "x"), at(11, 0, "y")], Instant::now());
    assert_eq!(all_msgs(&batches), ["x", "y"]);
}

#[test]
fn a_clock_that_goes_back_within_a_boot_hides_no_line() {
    let now = Instant::now();
    let mut b = Batcher::new(LIMITS, Cursor::default());
    let lines = vec![
        at(100, 0, "a"),
        at(101, 0, "b"),
        // The wall clock is stepped back by a minute.
        at(41, 0, "c"),
        at(41, 0, "d"),
        at(42, 0, "e"),
    ];
    let batches = run(&mut b, lines, now);
    assert_eq!(all_msgs(&batches), ["a", "b", "c", "d", "e"]);
    // The cursor never goes back: a replay of this ring queues nothing again.
    let cursor = batches.last().unwrap().cursor;
    assert_eq!(
        cursor,
        Cursor {
            nanos: 101_000_000_000,
            same: 1
        }
    );
    let mut again = Batcher::new(LIMITS, cursor);
    let replay = vec![
        at(100, 0, "a"),
        at(101, 0, "b"),
        at(41, 0, "c"),
        at(41, 0, "d"),
        at(42, 0, "e"),
    ];
    assert!(run(&mut again, replay, now).is_empty());
}

#[test]
fn a_reconnected_follower_replays_without_duplicates() {
    let now = Instant::now();
    let mut b = Batcher::new(LIMITS, Cursor::default());
    let mut queued = all_msgs(&run(&mut b, ring(), now));
    // memlogd's follow connection broke; the follower starts over at the
    // ring's oldest line, which now has one more line.
    b.new_stream();
    let mut replay = ring();
    replay.push(at(103, 0, "g2"));
    replay.push(at(104, 0, "h"));
    queued.extend(all_msgs(&run(&mut b, replay, now)));
    assert_eq!(queued, ["a", "b", "c", "d", "e", "f", "g", "g2", "h"]);
}
