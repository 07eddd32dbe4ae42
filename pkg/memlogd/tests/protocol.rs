//! Wire protocol against the real binary: fd passing, modes 0/1/2/3, line
//! handling.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;

use common::*;
use memlogd::{FollowFrom, LogEntry, QueryMode};

#[test]
fn fd_passing_and_dump_in_linuxkit_json() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "app");
    w.write_all(b"first\nsecond <b>&\"x\"\n").unwrap();
    d.wait_lines("app", 2);

    let raw = read_all(d.raw_query(QueryMode::Dump as u8));
    let lines: Vec<&str> = raw.lines().filter(|l| l.contains("\"app\"")).collect();
    assert_eq!(lines.len(), 2, "{raw}");
    for (line, msg) in lines.iter().zip([
        r#""msg":"first"}"#,
        r#""msg":"second \u003cb\u003e\u0026\"x\""}"#,
    ]) {
        // {"time":"YYYY-MM-DDTHH:MM:SS[.fraction without trailing zeros]Z","source":...,"msg":...}
        let rest = line.strip_prefix(r#"{"time":""#).unwrap();
        let (time, rest) = rest.split_once('"').unwrap();
        assert_eq!(&time[4..5], "-");
        assert_eq!(&time[10..11], "T");
        assert!(time.ends_with('Z'), "{time}");
        if let Some((_, frac)) = time.trim_end_matches('Z').split_once('.') {
            assert!(
                !frac.is_empty() && frac.len() <= 9 && !frac.ends_with('0'),
                "{time}"
            );
        }
        assert!(rest.starts_with(r#","source":"app","msg":"#), "{line}");
        assert!(line.ends_with(msg), "{line}");
    }
    let parsed = LogEntry::from_json(lines[1]).unwrap();
    assert_eq!(parsed.msg, "second <b>&\"x\"");
}

#[test]
fn received_fds_are_close_on_exec_in_memlogd() {
    let d = Daemon::start(&[]);
    let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    // Our copy is CLOEXEC too, so clear it: memlogd must set it itself.
    nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let ino = nix::sys::stat::fstat(&r).unwrap().st_ino;
    memlogd::register_fds(&d.log, "cloexec", &[r.as_fd()]).unwrap();
    assert_eq!(d.stats().source("cloexec").unwrap().streams, 1);
    let want = format!("pipe:[{ino}]");
    let fd = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_link(p).is_ok_and(|t| t.to_string_lossy() == want))
        .expect("memlogd holds the pipe");
    let info = std::fs::read_to_string(format!(
        "/proc/{}/fdinfo/{}",
        d.pid(),
        fd.file_name().unwrap().to_string_lossy()
    ))
    .unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap();
    assert_ne!(flags & 0o2000000, 0, "O_CLOEXEC not set: {info}");
}

#[test]
fn dump_closes_after_sending_the_ring() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "a");
    w.write_all(b"1\n2\n3\n").unwrap();
    d.wait_lines("a", 3);
    // read_to_string returns only at EOF: memlogd closed the connection.
    let raw = read_all(d.raw_query(0));
    assert!(raw.lines().count() >= 4, "{raw}"); // 3 + "memlogd started"
    assert!(raw.lines().next().unwrap().contains("memlogd started"));
}

#[test]
fn follow_sends_only_new_entries() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "f");
    w.write_all(b"old\n").unwrap();
    d.wait_lines("f", 1);
    let mut stream = memlogd::follow(&d.query, FollowFrom::Now, Some("f")).unwrap();
    // The follower is registered once stats lists it.
    wait_until("follower registered", || {
        d.stats()
            .readers
            .iter()
            .any(|r| r.mode == "follow")
            .then_some(())
    });
    w.write_all(b"new1\nnew2\n").unwrap();
    let got: Vec<String> = stream.by_ref().take(2).map(|e| e.unwrap().msg).collect();
    assert_eq!(got, ["new1", "new2"]);
}

#[test]
fn follower_that_shuts_down_its_sending_side_keeps_receiving() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "half");
    let s = d.raw_query(1);
    s.shutdown(std::net::Shutdown::Write).unwrap(); // as socat does on stdin EOF
    wait_until("follower registered", || {
        d.stats()
            .readers
            .iter()
            .any(|r| r.mode == "follow")
            .then_some(())
    });
    // Give memlogd every chance to (wrongly) take the half-close for a hang-up.
    // Count followers only: earlier stats connections may still be closing.
    let followers = || {
        d.stats()
            .readers
            .iter()
            .filter(|r| r.mode == "follow")
            .count()
    };
    let before = followers();
    w.write_all(b"still listening\n").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("still listening"), "{line:?}");
    assert_eq!(followers(), before);
}

#[test]
fn dump_then_follow_sends_history_then_new() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "df");
    w.write_all(b"h1\nh2\n").unwrap();
    d.wait_lines("df", 2);
    let mut stream = memlogd::follow(&d.query, FollowFrom::Oldest, Some("df")).unwrap();
    let got: Vec<String> = stream.by_ref().take(2).map(|e| e.unwrap().msg).collect();
    assert_eq!(got, ["h1", "h2"]);
    w.write_all(b"n1\n").unwrap();
    assert_eq!(stream.next().unwrap().unwrap().msg, "n1");
}

#[test]
fn stats_mode_reports_sources_readers_and_bounds() {
    let d = Daemon::start(&[
        "-max-lines",
        "300",
        "-max-bytes=123456",
        "-max-line-len",
        "64",
    ]);
    let (r1, _w1) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (r2, _w2) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    memlogd::register_fds(&d.log, "two", &[r1.as_fd(), r2.as_fd()]).unwrap();
    // No polling: a registration sent before a stats request is in its answer.
    let s = d.stats();
    assert_eq!(s.source("two").unwrap().streams, 2);
    assert_eq!(s.totals.streams_active, 2);
    assert_eq!(
        (
            s.totals.max_lines,
            s.totals.max_bytes,
            s.totals.max_line_len
        ),
        (300, 123456, 64)
    );
    assert_eq!(memlogd::active_sources(&d.query).unwrap(), ["two"]);
    // The stats connection itself is listed as a reader.
    assert!(s.readers.iter().any(|r| r.mode == "stats"));

    let _follower = d.raw_query(1);
    wait_until("follower in stats", || {
        let s = d.stats();
        (s.readers.iter().filter(|r| r.mode == "follow").count() == 1).then_some(())
    });

    // The raw answer is JSON lines, totals first, then closes.
    let raw = read_all(d.raw_query(3));
    let first = raw.lines().next().unwrap();
    assert!(first.starts_with(r#"{"kind":"totals""#), "{raw}");
    assert!(raw
        .lines()
        .any(|l| l.contains(r#""kind":"source","source":"two""#)));
}

#[test]
fn unknown_or_missing_mode_byte_closes_and_is_counted() {
    let d = Daemon::start(&[]);
    for mode in [4u8, 9, 255] {
        let mut s = d.raw_query(mode);
        let mut buf = Vec::new();
        assert_eq!(s.read_to_end(&mut buf).unwrap(), 0, "mode {mode}");
    }
    drop(std::os::unix::net::UnixStream::connect(&d.query).unwrap()); // no byte at all
    wait_until("bad modes counted", || {
        (d.stats().totals.bad_modes == 4).then_some(())
    });
    // and the daemon still serves
    let mut w = register_pipe(&d.log, "alive");
    w.write_all(b"yes\n").unwrap();
    d.wait_lines("alive", 1);
}

#[test]
fn long_lines_are_truncated_to_max_line_len() {
    let d = Daemon::start(&["-max-line-len", "16"]);
    let mut w = register_pipe(&d.log, "t");
    let long = "0123456789abcdefTAIL-DROPPED";
    // "é" is two bytes: cut in half at byte 16, the half character goes too.
    let cut = "0123456789abcdeé";
    w.write_all(format!("{long}\nexactly-16-bytes\nshort\r\n{cut}\n").as_bytes())
        .unwrap();
    drop(w);
    let got = d.wait_lines("t", 4);
    assert_eq!(
        got,
        [
            "0123456789abcdef",
            "exactly-16-bytes",
            "short",
            "0123456789abcde"
        ]
    );
    let s = d.stats();
    assert_eq!(s.source("t").unwrap().truncated, 2);
    assert_eq!(s.source("t").unwrap().received, 4);
}

#[test]
fn non_utf8_and_unterminated_lines_are_kept() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "bin");
    w.write_all(b"a\xffb\n\x1b[1mbold\nno newline at eof")
        .unwrap();
    drop(w); // EOF: the partial last line is logged
    let got = d.wait_lines("bin", 3);
    assert_eq!(got, ["a\u{fffd}b", "\u{1b}[1mbold", "no newline at eof"]);
    // EOF closed the stream
    wait_until("stream closed", || {
        (d.stats().source("bin").unwrap().streams == 0).then_some(())
    });
}

#[test]
fn many_fds_in_one_datagram_are_each_read_under_the_name() {
    let d = Daemon::start(&[]);
    let pipes: Vec<_> = (0..20)
        .map(|_| nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap())
        .collect();
    let fds: Vec<_> = pipes.iter().map(|(r, _)| r.as_fd()).collect();
    memlogd::register_fds(&d.log, "fan", &fds).unwrap();
    assert_eq!(d.stats().source("fan").unwrap().streams, 20);
    let mut writers: Vec<std::fs::File> = pipes.into_iter().map(|(_, w)| w.into()).collect();
    for (i, w) in writers.iter_mut().enumerate() {
        writeln!(w, "from {i}").unwrap();
    }
    let mut got = d.wait_lines("fan", 20);
    got.sort();
    assert_eq!(got.len(), 20);
    drop(writers);
    wait_until("all 20 streams closed", || {
        (d.stats().totals.streams_active == 0).then_some(())
    });
}

#[test]
fn follow_of_a_busy_stream_reads_line_by_line() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "busy");
    let s = d.raw_query(2);
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut r = BufReader::new(s);
    for i in 0..1000 {
        writeln!(w, "line {i}").unwrap();
    }
    let mut n = 0;
    let mut line = String::new();
    while n < 1000 {
        line.clear();
        r.read_line(&mut line).unwrap();
        let e = LogEntry::from_json(&line).unwrap();
        if e.source == "busy" {
            assert_eq!(e.msg, format!("line {n}"));
            n += 1;
        }
    }
}
