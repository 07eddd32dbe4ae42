//! Dumps (mode 0) deliver the ring as it was when they started, even to a
//! slow reader while a storm wraps the ring; what they keep alive is bounded.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use memlogd::{LogEntry, QueryMode};
use nix::sys::socket::{connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType};

/// Writes lines `"{tag} {n:06} ppp…"` (`len` bytes with the newline) for `n` in `range`.
fn write_lines(w: &mut impl Write, tag: &str, range: std::ops::Range<usize>, len: usize) {
    let mut buf = Vec::new();
    for n in range {
        let head = format!("{tag} {n:06} ");
        buf.extend_from_slice(head.as_bytes());
        buf.resize(buf.len() + len - head.len() - 1, b'p');
        buf.push(b'\n');
        if buf.len() >= 64 * 1024 {
            w.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    w.write_all(&buf).unwrap();
}

/// Waits until memlogd has received `want` lines from `source`.
fn wait_received(d: &Daemon, source: &str, want: u64) {
    wait_until(&format!("{want} lines from {source} ingested"), || {
        (d.stats().source(source).map_or(0, |s| s.received) == want).then_some(())
    });
}

/// `(tag, n)` of a line written by `write_lines`.
fn tag_and_number(e: &LogEntry) -> (String, usize) {
    let mut words = e.msg.split(' ');
    let tag = words.next().unwrap().to_string();
    let n = words.next().and_then(|n| n.parse().ok());
    (tag, n.unwrap_or_else(|| panic!("not a test line: {e:?}")))
}

/// A query connection with a tiny receive buffer that has sent `mode`.
fn small_buffer_query(query: &Path, mode: QueryMode) -> UnixStream {
    let fd: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &4096).unwrap();
    connect(
        fd.as_raw_fd(),
        &nix::sys::socket::UnixAddr::new(query).unwrap(),
    )
    .unwrap();
    let mut s = UnixStream::from(fd);
    s.write_all(&[mode as u8]).unwrap();
    s
}

/// Parses a dump's raw bytes into entries.
fn parse(raw: &[u8]) -> Vec<LogEntry> {
    std::str::from_utf8(raw)
        .unwrap()
        .lines()
        .map(|l| LogEntry::from_json(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Fills a ring of `RING` entries, starts a dump in `mode` read slowly while
/// a storm wraps the ring `WRAPS` times, and checks that the dump part holds
/// exactly the entries present at its start, in order. Returns what followed
/// the dump part (mode 2), up to the storm's last line.
fn slow_dump_during_a_storm(mode: QueryMode) -> Vec<LogEntry> {
    const RING: usize = 20_000;
    const LINE: usize = 200;
    const WRAPS: usize = 5;
    let last_storm_line = format!("storm {:06} ", RING * WRAPS - 1);
    // Line-bound ring: 20000 entries of ~270 encoded bytes (~5 MB), far more
    // than the socket buffers between memlogd and the reader.
    let d = Daemon::start(&["-max-lines", &RING.to_string(), "-max-bytes", "67108864"]);
    let mut pre = register_pipe(&d.log, "pre");
    write_lines(&mut pre, "pre", 0..RING, LINE);
    wait_received(&d, "pre", RING as u64);
    // The ring is full: the pre lines, and memlogd's start-up line unless it
    // was evicted (it may have been logged after the first pre lines).
    let s = d.stats();
    let held_pre = s.source("pre").unwrap().lines as usize;
    let held_own = s.source("memlogd").map_or(0, |s| s.lines) as usize;
    assert_eq!(held_pre + held_own, RING, "{s:?}");

    let mut conn = small_buffer_query(&d.query, mode);
    // The first bytes arrive: the dump has started.
    let mut first = vec![0u8; 64];
    conn.read_exact(&mut first).unwrap();
    let storm_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let storm_done = storm_done.clone();
        let last = last_storm_line.clone();
        std::thread::spawn(move || {
            // Slow while the storm lasts: 64 bytes per millisecond at most.
            let mut got = first;
            let mut tiny = [0u8; 64];
            while !storm_done.load(Ordering::SeqCst) {
                match conn.read(&mut tiny).unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&tiny[..n]),
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Then fast, to the end of a dump or the storm's last line.
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = conn.read(&mut chunk).unwrap();
                got.extend_from_slice(&chunk[..n]);
                let tail = &got[got.len().saturating_sub(2 * LINE)..];
                let at_last =
                    String::from_utf8_lossy(tail).contains(&last) && tail.ends_with(b"\n");
                if n == 0 || at_last {
                    return got;
                }
            }
        })
    };

    // The storm wraps the ring several times while the reader crawls.
    let mut storm = register_pipe(&d.log, "storm");
    write_lines(&mut storm, "storm", 0..RING * WRAPS, LINE);
    wait_received(&d, "storm", (RING * WRAPS) as u64);
    assert_eq!(
        d.stats().source("pre").unwrap().lines,
        0,
        "ring not wrapped"
    );
    storm_done.store(true, Ordering::SeqCst);

    let mut entries = parse(&reader.join().unwrap());
    let after: Vec<LogEntry> = entries.split_off(RING.min(entries.len()));
    let own = entries.iter().filter(|e| e.source == "memlogd").count();
    let got: Vec<usize> = entries
        .iter()
        .filter(|e| e.source != "memlogd")
        .map(tag_and_number)
        .map(|(tag, n)| {
            assert_eq!(tag, "pre", "entry that arrived after the dump started");
            n
        })
        .collect();
    assert_eq!(
        entries.len(),
        RING,
        "dump delivered {} of the {RING} entries present at its start ({} missing)",
        entries.len(),
        RING.saturating_sub(entries.len())
    );
    assert_eq!(own, held_own, "memlogd's own entries in the dump");
    assert!(
        got.iter().copied().eq(RING - held_pre..RING),
        "dump out of order or with gaps"
    );
    after
}

#[test]
fn slow_dump_during_a_storm_delivers_every_entry_present_at_its_start() {
    let after = slow_dump_during_a_storm(QueryMode::Dump);
    assert!(after.is_empty(), "after the dump: {:?}", &after[..1]);
}

#[test]
fn slow_dump_then_follow_during_a_storm_delivers_the_whole_dump_then_follows() {
    let after = slow_dump_during_a_storm(QueryMode::DumpFollow);
    // The follow part lags (its losses are counted like any follower's) but
    // stays in order and reaches the storm's end.
    let numbers: Vec<usize> = after
        .iter()
        .map(|e| {
            let (tag, n) = tag_and_number(e);
            assert_eq!(tag, "storm", "{e:?}");
            n
        })
        .collect();
    assert!(
        numbers.windows(2).all(|p| p[0] < p[1]),
        "follow out of order"
    );
    assert_eq!(numbers.last(), Some(&99_999));
}

#[test]
fn memory_kept_for_stuck_dumps_stays_within_max_dump_bytes_and_drops_are_counted() {
    const DUMPS: usize = 12;
    const LINE: usize = 400;
    const GENERATION: usize = 10_000; // more lines than the ring holds
    const MAX_BYTES: u64 = 4 << 20;
    const MAX_DUMP_BYTES: u64 = 4 << 20;
    let d = Daemon::start(&[
        "-max-lines",
        "1000000",
        "-max-bytes",
        &MAX_BYTES.to_string(),
        "-max-dump-bytes",
        &MAX_DUMP_BYTES.to_string(),
    ]);
    let mut w = register_pipe(&d.log, "gen");
    let mut written = 0;
    let mut generation = |w: &mut std::fs::File, g: usize| {
        write_lines(w, &format!("g{g}"), 0..GENERATION, LINE);
        written += GENERATION as u64;
        let want = written;
        wait_until("a generation ingested", || {
            let s = d.stats();
            let t = &s.totals;
            assert!(t.dump_bytes <= t.max_dump_bytes, "over budget: {t:?}");
            (s.source("gen").unwrap().received == want).then_some(())
        });
    };
    generation(&mut w, 0);
    let full_ring_hwm = d.vm_hwm_kib();

    // Each dump starts on a different generation and is never read, so
    // without a budget each would keep a whole ring alive.
    let mut dumps = Vec::new();
    for g in 0..DUMPS {
        let conn = small_buffer_query(&d.query, QueryMode::Dump);
        let held = wait_until("the dump listed", || {
            let s = d.stats();
            let listed = s.readers.iter().filter(|r| r.mode == "dump").count();
            (listed == g + 1).then_some(s.totals.lines)
        });
        dumps.push((conn, held));
        generation(&mut w, g + 1);
    }

    let s = d.stats();
    let t = &s.totals;
    assert!(t.dump_bytes <= MAX_DUMP_BYTES, "{t:?}");
    assert_eq!(t.max_dump_bytes, MAX_DUMP_BYTES);
    assert_eq!(t.dumps_unsnapshotted, 0, "{t:?}");
    let dropped: Vec<u64> = s
        .readers
        .iter()
        .filter(|r| r.mode == "dump")
        .map(|r| r.dropped)
        .collect();
    assert_eq!(dropped.len(), DUMPS);
    assert_eq!(dropped.iter().sum::<u64>(), t.dump_drops, "{s:?}");
    assert!(t.dump_drops > 0, "nothing dropped: {t:?}");

    // Peak memory: the full ring's, plus what the budget allows, twice (the
    // allocator's per-thread arenas keep some freed memory: memlogd runs two
    // worker threads), plus 8 MiB for per-connection buffers. Without the
    // budget the stuck dumps would keep 11 more rings (~48 MiB) alive.
    let bound = full_ring_hwm + 2 * MAX_DUMP_BYTES / 1024 + 8 * 1024;
    let hwm = d.vm_hwm_kib();
    eprintln!(
        "full ring peak {full_ring_hwm} KiB, after {DUMPS} stuck dumps {hwm} KiB \
         (bound {bound} KiB), dropped per dump {dropped:?}"
    );
    assert!(hwm <= bound, "memlogd peak RSS {hwm} KiB > {bound} KiB");

    // Each dump delivers, in order, what it kept of its generation; one that
    // missed entries ends with a notice naming how many.
    for (g, ((mut conn, held), dropped)) in dumps.into_iter().zip(dropped).enumerate() {
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).unwrap();
        let mut entries = parse(&raw);
        if dropped > 0 {
            let notice = entries.pop().unwrap();
            assert_eq!(notice.source, "memlogd", "{notice:?}");
            let want = format!("dump incomplete: {dropped} of the {held} entries");
            assert!(notice.msg.starts_with(&want), "{notice:?}, want {want:?}");
        }
        let numbers: Vec<usize> = entries
            .iter()
            .map(|e| {
                let (tag, n) = tag_and_number(e);
                assert_eq!(tag, format!("g{g}"), "{e:?}");
                n
            })
            .collect();
        assert!(
            numbers.windows(2).all(|p| p[0] < p[1]),
            "dump {g} out of order"
        );
        assert_eq!(numbers.len() as u64 + dropped, held, "dump {g}");
    }
}

#[test]
fn without_a_budget_a_dump_reads_the_live_ring_and_says_what_it_missed() {
    const RING: usize = 5_000;
    let d = Daemon::start(&["-max-lines", &RING.to_string(), "-max-dump-bytes", "0"]);
    let mut pre = register_pipe(&d.log, "pre");
    write_lines(&mut pre, "pre", 0..RING, 200);
    wait_received(&d, "pre", RING as u64);
    let mut conn = small_buffer_query(&d.query, QueryMode::Dump);
    let mut first = vec![0u8; 64];
    conn.read_exact(&mut first).unwrap();
    let mut storm = register_pipe(&d.log, "storm");
    write_lines(&mut storm, "storm", 0..RING * 2, 200);
    wait_received(&d, "storm", (RING * 2) as u64);
    let s = d.stats();
    assert_eq!(s.totals.dumps_unsnapshotted, 1, "{:?}", s.totals);
    let lag = s.readers.iter().find(|r| r.mode == "dump").unwrap().dropped;

    let mut raw = first;
    conn.read_to_end(&mut raw).unwrap();
    let mut entries = parse(&raw);
    let notice = entries.pop().unwrap();
    let delivered = entries.len() as u64;
    assert!(delivered < RING as u64, "nothing lost? {delivered}");
    let lost = RING as u64 - delivered;
    assert_eq!(lag, lost, "live drop counter");
    assert_eq!(notice.source, "memlogd");
    let want = format!("dump incomplete: {lost} of the {RING} entries");
    assert!(notice.msg.starts_with(&want), "{notice:?}, want {want:?}");
    assert!(notice.msg.contains("evicted"), "{notice:?}");
}
