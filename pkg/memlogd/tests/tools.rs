//! `logread` and `logwrite` against the real daemon.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::*;

fn logread(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(LOGREAD)
        .arg("-socket")
        .arg(&d.query)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Splits a logread line into (time, source, msg) at the first two unescaped `;`.
fn fields(line: &str) -> (&str, String, &str) {
    let (time, rest) = line.split_once(';').unwrap();
    let mut source = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if rest[i + 1..].starts_with(';') => {
                source.push(';');
                chars.next();
            }
            ';' => return (time, source, &rest[i + 1..]),
            c => source.push(c),
        }
    }
    panic!("no msg in {line:?}");
}

#[test]
fn logread_prints_linuxkit_format() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "svc;1");
    w.write_all(b"hello; world <x>\n").unwrap();
    d.wait_lines("svc;1", 1);
    let out = logread(&d, &[]);
    let line = out.lines().find(|l| l.contains("hello")).unwrap();
    assert!(line.contains(";svc\\;1;hello; world <x>"), "{line}");
    let (time, source, msg) = fields(line);
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    assert_eq!((source.as_str(), msg), ("svc;1", "hello; world <x>"));
    // The time printed is the one memlogd sent.
    let json = logread(&d, &["-json", "-source", "svc;1"]);
    assert_eq!(json.lines().count(), 1, "{json}");
    assert!(
        json.starts_with(&format!("{{\"time\":\"{time}\",\"source\":\"svc;1\"")),
        "{json}"
    );
    assert!(
        json.contains(r#""msg":"hello; world \u003cx\u003e"}"#),
        "{json}"
    );
}

#[test]
fn logread_source_filter_and_stats() {
    let d = Daemon::start(&[]);
    let mut a = register_pipe(&d.log, "a");
    let mut b = register_pipe(&d.log, "b");
    a.write_all(b"from a\n").unwrap();
    b.write_all(b"from b\n").unwrap();
    d.wait_lines("a", 1);
    d.wait_lines("b", 1);
    let out = logread(&d, &["-source=b"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.trim_end().ends_with(";b;from b"), "{out}");

    let stats = logread(&d, &["-stats"]);
    assert!(stats.starts_with("ring: 3/5000 lines"), "{stats}");
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with('a') && l.contains(" 1 ")),
        "{stats}"
    );
    let raw = logread(&d, &["-stats", "-json"]);
    assert!(raw.starts_with(r#"{"kind":"totals""#), "{raw}");
}

#[test]
fn logread_follow_modes() {
    let d = Daemon::start(&[]);
    let mut w = register_pipe(&d.log, "fl");
    w.write_all(b"before\n").unwrap();
    d.wait_lines("fl", 1);
    for (flag, first) in [("-f", "after"), ("-F", "before")] {
        let mut child = Command::new(LOGREAD)
            .arg("-socket")
            .arg(&d.query)
            .args([flag, "-source", "fl"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("logread registered", || {
            d.stats()
                .readers
                .iter()
                .any(|r| r.mode.contains("follow"))
                .then_some(())
        });
        writeln!(w, "after").unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().unwrap().unwrap();
        assert!(line.ends_with(&format!(";fl;{first}")), "{flag}: {line}");
        child.kill().unwrap();
        child.wait().unwrap();
        wait_until("logread gone", || {
            d.stats()
                .readers
                .iter()
                .all(|r| !r.mode.contains("follow"))
                .then_some(())
        });
    }
}

#[test]
fn logread_without_memlogd_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(LOGREAD)
        .arg("-socket")
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is memlogd running?"));
}

#[test]
fn logwrite_registers_name_out_and_name_and_tees() {
    let d = Daemon::start(&[]);
    let out = Command::new(LOGWRITE)
        .arg("-socket")
        .arg(&d.log)
        .args([
            "-n",
            "svc",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");
    assert_eq!(d.wait_lines("svc.out", 1), ["to-stdout"]);
    assert_eq!(d.wait_lines("svc", 1), ["to-stderr"]);
    wait_until("logwrite streams closed", || {
        (d.stats().totals.streams_active == 0).then_some(())
    });
}

#[test]
fn logwrite_defaults_name_to_the_command() {
    let d = Daemon::start(&[]);
    let status = Command::new(LOGWRITE)
        .arg(format!("-socket={}", d.log.display()))
        .args(["echo", "-n", "x"]) // flags after the command belong to it
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(d.wait_lines("echo.out", 1), ["x"]);
}

#[test]
fn logwrite_without_memlogd_or_command_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(LOGWRITE)
        .arg("-socket")
        .arg(dir.path().join("none.sock"))
        .arg("true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("send failed"));
    let out = Command::new(LOGWRITE).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command specified"));
}
