//! Malformed input, misbehaving clients, restarts: no crash, no fd leak.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

use common::*;

#[test]
fn malformed_datagrams_are_rejected_and_close_their_fds() {
    let d = Daemon::start(&[]);
    let baseline = d.settled_fd_count();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let fd = r.as_raw_fd();

    send_raw(&d.log, b"no-fd", &[]).unwrap();
    send_raw(&d.log, b"", &[fd]).unwrap();
    send_raw(&d.log, &[b'n'; 257], &[fd]).unwrap();
    send_raw(&d.log, &[b'n'; 4000], &[fd]).unwrap();
    let s = d.stats();
    assert_eq!(s.totals.rejected_datagrams, 4);
    assert_eq!(s.totals.streams_active, 0);

    // Fds memlogd cannot read: a directory, /dev/null (not pollable).
    let dir = std::fs::File::open(d.dir.path()).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    send_raw(&d.log, b"dir", &[dir.as_raw_fd()]).unwrap();
    send_raw(&d.log, b"null", &[null.as_raw_fd()]).unwrap();
    assert_eq!(d.stats().totals.streams_rejected, 2);

    // Exactly 256 bytes is fine; a non-UTF-8 name is kept lossily.
    let name256 = "n".repeat(256);
    send_raw(&d.log, name256.as_bytes(), &[fd]).unwrap();
    send_raw(&d.log, b"bad\xffname", &[fd]).unwrap();
    let s = d.stats();
    assert_eq!(s.source(&name256).unwrap().streams, 1);
    assert_eq!(s.source("bad\u{fffd}name").unwrap().streams, 1);

    // A regular file is read to EOF.
    let file_path = d.dir.path().join("plain.txt");
    std::fs::write(&file_path, "from a file\nsecond\n").unwrap();
    let file = std::fs::File::open(&file_path).unwrap();
    send_raw(&d.log, b"file", &[file.as_raw_fd()]).unwrap();
    assert_eq!(d.wait_lines("file", 2), ["from a file", "second"]);

    drop((r, w, dir, null, file));
    d.wait_fds(baseline);
    // and memlogd logged the rejections under its own name
    let own = d.dump_source("memlogd");
    assert!(own.iter().any(|m| m.contains("empty name")), "{own:?}");
    assert!(own.iter().any(|m| m.contains("longer than 256")), "{own:?}");
}

/// Ten thousand clients that misbehave in every way we can think of.
#[test]
fn ten_thousand_bad_clients_leave_the_fd_count_flat() {
    let d = Daemon::start(&[]);
    let baseline = d.settled_fd_count();
    let mut kinds = [0u32; 9];
    for i in 0..10_000 {
        let kind = i % 9;
        kinds[kind] += 1;
        match kind {
            0 => {
                send_raw(&d.log, b"no fd", &[]).unwrap();
            }
            1 => {
                let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
                send_raw(&d.log, b"", &[r.as_raw_fd()]).unwrap();
            }
            2 => {
                let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
                send_raw(&d.log, &[b'x'; 300], &[r.as_raw_fd()]).unwrap();
            }
            3 => {
                // valid stream whose writer is already gone
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
                drop(w);
                memlogd::register_fds(&d.log, "short-lived", &[r.as_fd()]).unwrap();
            }
            4 => {
                // valid stream, one line, writer closes mid-line
                let mut w = register_pipe(&d.log, "mid-line");
                w.write_all(b"half a li").unwrap();
            }
            5 => drop(UnixStream::connect(&d.query).unwrap()), // no mode byte
            6 => drop(d.raw_query(200)),                       // unknown mode
            7 => drop(d.raw_query(1)),                         // follow, hang up
            _ => {
                // dump, read a little, hang up
                let mut s = d.raw_query(0);
                let mut b = [0u8; 10];
                let _ = s.read(&mut b);
            }
        }
    }
    d.wait_fds(baseline);
    let s = d.stats();
    assert_eq!(
        s.totals.rejected_datagrams,
        u64::from(kinds[0] + kinds[1] + kinds[2])
    );
    assert_eq!(s.totals.bad_modes, u64::from(kinds[5] + kinds[6]));
    assert_eq!(s.totals.streams_active, 0);
    assert_eq!(
        s.source("mid-line").map_or(0, |s| s.received),
        u64::from(kinds[4])
    );
    assert_eq!(
        s.readers.len(),
        1,
        "only this stats reader: {:?}",
        s.readers
    );
    // still serving
    let mut w = register_pipe(&d.log, "after");
    w.write_all(b"still here\n").unwrap();
    d.wait_lines("after", 1);
}

#[test]
fn too_many_readers_are_refused_not_queued() {
    let d = Daemon::start(&["-max-readers", "4"]);
    let followers: Vec<_> = (0..4).map(|_| d.raw_query(1)).collect();
    // wait until all four are registered: a stats request would be refused now
    wait_until("four followers", || {
        let mut s = UnixStream::connect(&d.query).unwrap();
        // A refused connection may already be closed when we write (EPIPE).
        if s.write_all(&[3]).is_err() {
            return Some(());
        }
        let mut out = String::new();
        // refused: closed at once (EOF, or ECONNRESET as our byte was unread)
        match s.read_to_string(&mut out) {
            Ok(_) if out.is_empty() => Some(()),
            Err(_) => Some(()),
            _ => None,
        }
    });
    drop(followers);
    wait_until("refusals counted", || {
        memlogd::stats(&d.query)
            .ok()
            .filter(|s| s.totals.readers_rejected >= 1)
    });
}

#[test]
fn stale_socket_is_replaced_and_live_one_refused() {
    let d = Daemon::start(&[]);
    // A second memlogd on the same paths refuses to start.
    let out = Command::new(MEMLOGD)
        .arg("-socket-log")
        .arg(&d.log)
        .arg("-socket-query")
        .arg(&d.query)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    // The first one is killed hard, leaving its socket files: a new one starts.
    let dir = d.kill_keep_dir();
    assert!(dir.path().join("query.sock").exists());
    let d = Daemon::start_in(dir, &[]);
    let mut w = register_pipe(&d.log, "new");
    w.write_all(b"ok\n").unwrap();
    d.wait_lines("new", 1);
}

#[test]
fn sigterm_removes_socket_files() {
    let mut d = Daemon::start(&[]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!d.log.exists() && !d.query.exists());
}

#[test]
fn flags_parse_like_go_and_bad_ones_exit_2() {
    let d = Daemon::start(&["-max-lines=7", "--max-line-len", "99"]);
    let t = d.stats().totals;
    assert_eq!((t.max_lines, t.max_line_len), (7, 99));
    let run = |args: &[&str]| {
        Command::new(MEMLOGD)
            .args(args)
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    assert_eq!(run(&["-h"]).status.code(), Some(0));
    assert!(String::from_utf8_lossy(&run(&["-h"]).stderr).contains("-max-line-len int"));
    assert_eq!(run(&["-no-such-flag"]).status.code(), Some(2));
    assert_eq!(run(&["-max-lines"]).status.code(), Some(2));
    assert_eq!(run(&["-max-lines", "0"]).status.code(), Some(1));
}

#[test]
fn daemonize_serves_from_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.sock");
    let query = dir.path().join("query.sock");
    let status = Command::new(MEMLOGD)
        .arg("-daemonize")
        .arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .arg("-max-lines=42")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // The parent has exited; the sockets answer at once (bound before the fork).
    let s = memlogd::stats(&query).unwrap();
    assert_eq!(s.totals.max_lines, 42);
    let started = wait_until("the child's start message", || {
        memlogd::dump(&query, Some("memlogd"))
            .ok()?
            .into_iter()
            .find(|e| e.msg.starts_with("memlogd started"))
    });
    let pid: i32 = started
        .msg
        .split("pid ")
        .nth(1)
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .expect("pid in the start message");
    let mut w = register_pipe(&log, "daemon");
    w.write_all(b"hello\n").unwrap();
    wait_until("line via the daemon", || {
        (memlogd::dump(&query, Some("daemon")).ok()?.len() == 1).then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[test]
fn in_process_server_runs_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = memlogd::Config::in_dir(dir.path());
    let (log, query) = (cfg.socket_log.clone(), cfg.socket_query.clone());
    let server = memlogd::Server::bind(cfg).unwrap();
    let handle = server.shutdown_handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let thread = std::thread::spawn(move || rt.block_on(server.run()));
    let mut w = register_pipe(&log, "inproc");
    w.write_all(b"in process\n").unwrap();
    let got = wait_until("in-process line", || {
        let v = memlogd::dump(&query, Some("inproc")).ok()?;
        (v.len() == 1).then_some(v)
    });
    assert_eq!(got[0].msg, "in process");
    handle.shutdown();
    thread.join().unwrap().unwrap();
    assert!(!log.exists() && !query.exists());
    assert!(memlogd::stats(&query).is_err());
}
