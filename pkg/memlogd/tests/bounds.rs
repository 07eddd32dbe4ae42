//! Ring bounds under a flood, per-source eviction counters, slow readers.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use common::*;
use memlogd::{FollowFrom, Stats};

fn flood(d: &Daemon, writers: usize, lines: usize, line_len: usize) {
    let handles: Vec<_> = (0..writers)
        .map(|i| {
            let mut w = register_pipe(&d.log, &format!("w{i}"));
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                for n in 0..lines {
                    let head = format!("w{i} {n} ");
                    buf.extend_from_slice(head.as_bytes());
                    buf.resize(buf.len() + line_len - head.len() - 1, b'x');
                    buf.push(b'\n');
                    if buf.len() > 32 * 1024 {
                        w.write_all(&buf).unwrap();
                        buf.clear();
                    }
                }
                w.write_all(&buf).unwrap();
            })
        })
        .collect();
    // Sample the counters while the flood is on.
    while !handles.iter().all(|h| h.is_finished()) {
        check_bounds(&d.stats());
    }
    for h in handles {
        h.join().unwrap();
    }
    wait_until("the whole flood ingested", || {
        let s = d.stats();
        check_bounds(&s);
        let got: u64 = (0..writers)
            .map(|i| s.source(&format!("w{i}")).map_or(0, |s| s.received))
            .sum();
        (got == (writers * lines) as u64).then_some(())
    });
}

fn check_bounds(s: &Stats) {
    let t = &s.totals;
    assert!(
        t.lines <= t.max_lines,
        "{} lines > {}",
        t.lines,
        t.max_lines
    );
    assert!(
        t.bytes <= t.max_bytes,
        "{} bytes > {}",
        t.bytes,
        t.max_bytes
    );
}

fn check_counters(s: &Stats) {
    let t = &s.totals;
    assert_eq!(t.received, t.lines + t.evicted, "totals {t:?}");
    for src in &s.sources {
        assert_eq!(src.received, src.lines + src.evicted, "source {src:?}");
    }
    assert_eq!(s.sources.iter().map(|s| s.lines).sum::<u64>(), t.lines);
    assert_eq!(s.sources.iter().map(|s| s.bytes).sum::<u64>(), t.bytes);
    assert_eq!(s.sources.iter().map(|s| s.evicted).sum::<u64>(), t.evicted);
}

#[test]
fn line_bound_holds_under_flood_and_evictions_are_counted() {
    let d = Daemon::start(&["-max-lines", "100"]);
    flood(&d, 4, 5000, 100);
    let s = d.stats();
    check_counters(&s);
    assert_eq!(s.totals.lines, 100);
    assert_eq!(s.totals.evicted, s.totals.received - 100);
    // The ring holds the newest entries: the last line of some writer is there.
    let dump = d.dump();
    assert_eq!(dump.len(), 100);
    assert!(dump.iter().any(|e| e.msg.starts_with("w0 4999 ")
        || e.msg.starts_with("w1 4999 ")
        || e.msg.starts_with("w2 4999 ")
        || e.msg.starts_with("w3 4999 ")));
}

#[test]
fn byte_bound_holds_under_flood_and_matches_dump_size() {
    let d = Daemon::start(&["-max-bytes", "20000", "-max-line-len", "200"]);
    flood(&d, 4, 3000, 150);
    let s = d.stats();
    check_counters(&s);
    assert!(
        s.totals.lines < 100,
        "byte bound should bind first: {:?}",
        s.totals
    );
    assert!(
        s.totals.bytes > 20000 - 300,
        "ring should be nearly full: {:?}",
        s.totals
    );
    // bytes are the encoded JSON lines: exactly what a dump sends
    let raw = read_all(d.raw_query(0));
    assert_eq!(raw.len() as u64, s.totals.bytes);
}

#[test]
fn stalled_reader_blocks_neither_writers_nor_other_readers() {
    let d = Daemon::start(&["-max-lines", "1000"]);
    // Connected, asked to follow, never reads.
    let _stalled = d.raw_query(1);
    // A fast follower in another thread, looking for the end marker.
    let (found_tx, found_rx) = mpsc::channel();
    let query = d.query.clone();
    let started = Arc::new(AtomicBool::new(false));
    let started2 = started.clone();
    std::thread::spawn(move || {
        let stream = memlogd::follow(&query, FollowFrom::Now, Some("flood")).unwrap();
        started2.store(true, Ordering::SeqCst);
        let mut seen = 0u64;
        for e in stream {
            let e = e.unwrap();
            seen += 1;
            if e.msg == "END" {
                let _ = found_tx.send(seen);
                return;
            }
        }
    });
    wait_until("two followers registered", || {
        let s = d.stats();
        (started.load(Ordering::SeqCst)
            && s.readers.iter().filter(|r| r.mode == "follow").count() == 2)
            .then_some(())
    });

    // 20 MB through a pipe: far more than the stalled socket's buffer.
    let mut w = register_pipe(&d.log, "flood");
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let line = [b'y'; 99];
        let mut chunk = Vec::new();
        for _ in 0..400 {
            chunk.extend_from_slice(&line);
            chunk.push(b'\n');
        }
        for _ in 0..500 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"END\n").unwrap();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(DEADLINE)
        .expect("the writer was blocked");
    let seen = found_rx
        .recv_timeout(DEADLINE)
        .expect("the fast follower never saw END");
    assert!(seen > 1);

    let stalled_drops = |s: &Stats| {
        s.readers
            .iter()
            .filter(|r| r.mode == "follow")
            .map(|r| r.dropped)
            .max()
            .unwrap()
    };
    let s = d.stats();
    let drops = stalled_drops(&s);
    assert!(drops > 100_000, "stalled reader drops: {drops}, {s:?}");
    assert!(s.totals.reader_drops >= drops);
    // more writes, more drops for the stalled reader
    let mut w = register_pipe(&d.log, "more");
    for _ in 0..2000 {
        writeln!(w, "z").unwrap();
    }
    wait_until("stalled reader drop counter grows", || {
        (stalled_drops(&d.stats()) >= drops + 1000).then_some(())
    });
    // Memory stays bounded (1000 short entries, 64 KiB read buffers).
    let hwm = d.vm_hwm_kib();
    assert!(hwm < 64 * 1024, "memlogd peak RSS {hwm} KiB");
}
