//! memlogd ingest and delivery throughput, versus a raw pipe, same run.
//!
//! `cargo run --release -p outpost-bench --bin bench-memlogd [-- --seconds S] [--memlogd PATH]`
//!
//! Each run: 8 writer threads write 100-byte lines (40 per 4000-byte write)
//! for S seconds (default 3) into pipes registered with a freshly started
//! memlogd; one follower (mode 1) reads as fast as it can. Reported: lines/s
//! ingested by memlogd, lines/s delivered to the follower, the follower's
//! drops, and memlogd's peak RSS (`VmHWM`). Runs: linuxkit-default bounds
//! (5000 lines, 1024-byte lines, 8 MiB) and big bounds (1,000,000 lines,
//! 256 MiB); the baseline is the same writers into one pipe read by `wc -l`.
//!
//! Which memlogd, first found: `--memlogd PATH`; `$MEMLOGD_BIN`; the
//! `memlogd` binary next to this one if it is newer than this one (run
//! `cargo build --release -p memlogd` first); otherwise this binary
//! re-executes itself as the daemon (`--as-memlogd`), running exactly
//! `memlogd::cli::memlogd::main`, the code of the `memlogd` binary, in its
//! own process. The line "daemon:" of the output says which one ran.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_bench::peak_rss_kib;

const WRITERS: usize = 8;
const LINE: usize = 100;
const LINES_PER_WRITE: usize = 40;

fn main() -> Result<()> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--as-memlogd") {
        let argv = std::iter::once(OsString::from("memlogd")).chain(args[2..].iter().cloned());
        std::process::exit(memlogd::cli::memlogd::main(argv));
    }
    let mut seconds = 3.0f64;
    let mut daemon: Option<PathBuf> = std::env::var_os("MEMLOGD_BIN").map(PathBuf::from);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--seconds") => {
                seconds = it
                    .next()
                    .context("--seconds needs a value")?
                    .to_string_lossy()
                    .parse()?
            }
            Some("--memlogd") => daemon = Some(it.next().context("--memlogd needs a path")?.into()),
            _ => bail!("usage: bench-memlogd [--seconds S] [--memlogd PATH]"),
        }
    }
    if daemon.is_none() {
        daemon = fresh_sibling()?;
    }
    let duration = Duration::from_secs_f64(seconds);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "memlogd: {WRITERS} writers x {LINE}-byte lines, {seconds:.1} s per run, 1 follower, {cpus} CPUs"
    );
    match &daemon {
        Some(p) => println!("daemon: {}", p.display()),
        None => println!("daemon: this binary as memlogd (memlogd::cli::memlogd::main)"),
    }
    println!(
        "\n{:<34} {:>12} {:>12} {:>12} {:>13} {:>10}",
        "run", "ingested/s", "delivered/s", "dropped", "ring at end", "peak RSS"
    );

    let base = raw_pipe(duration)?;
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>13} {:>10}",
        "raw pipe -> wc -l (baseline)",
        rate(base.0, base.1),
        "-",
        "-",
        "-",
        "-"
    );
    for (name, bounds) in [
        ("memlogd 5000 lines / 8 MiB", ["5000", "8388608"]),
        ("memlogd 1M lines / 256 MiB", ["1000000", "268435456"]),
    ] {
        let r = memlogd_run(daemon.as_deref(), &bounds, duration)?;
        println!(
            "{:<34} {:>12} {:>12} {:>12} {:>13} {:>10}",
            name,
            rate(r.ingested, r.ingest_time),
            rate(r.delivered, r.ingest_time),
            r.dropped,
            format!("{} / {} KiB", r.ring_lines, r.ring_bytes / 1024),
            format!("{} MiB", r.peak_rss_kib / 1024),
        );
    }
    Ok(())
}

/// The `memlogd` binary next to this one, if it was built after this one
/// (this binary is rebuilt whenever the memlogd library changes, so an older
/// sibling may be stale).
fn fresh_sibling() -> Result<Option<PathBuf>> {
    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("memlogd");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Ok(match (modified(&sibling), modified(&me)) {
        (Some(s), Some(m)) if s >= m => Some(sibling),
        (Some(_), _) => {
            println!(
                "note: {} is older than this benchmark, not using it \
                 (cargo build --release -p memlogd to use it)",
                sibling.display()
            );
            None
        }
        _ => None,
    })
}

fn rate(lines: u64, t: Duration) -> String {
    format!("{:.0}", lines as f64 / t.as_secs_f64())
}

/// Writes 100-byte lines into `w` for `d`; returns the lines written.
fn write_lines(mut w: impl Write, d: Duration, id: usize) -> u64 {
    let mut chunk = Vec::with_capacity(LINE * LINES_PER_WRITE);
    for i in 0..LINES_PER_WRITE {
        let head = format!("writer {id} line {i} ");
        chunk.extend_from_slice(head.as_bytes());
        chunk.resize(chunk.len() + LINE - head.len() - 1, b'.');
        chunk.push(b'\n');
    }
    let start = Instant::now();
    let mut lines = 0;
    while start.elapsed() < d {
        if w.write_all(&chunk).is_err() {
            break;
        }
        lines += LINES_PER_WRITE as u64;
    }
    lines
}

/// Baseline: the same writers into one pipe (4000-byte writes are atomic),
/// counted by `wc -l`. Returns (lines, time until the reader finished).
fn raw_pipe(d: Duration) -> Result<(u64, Duration)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut wc = Command::new("wc")
        .arg("-l")
        .stdin(std::fs::File::from(r))
        .stdout(Stdio::piped())
        .spawn()
        .context("running wc")?;
    let w = std::fs::File::from(w);
    let start = Instant::now();
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let w = w.try_clone().unwrap();
            std::thread::spawn(move || write_lines(w, d, i))
        })
        .collect();
    drop(w);
    let written: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let mut out = String::new();
    wc.stdout.take().unwrap().read_to_string(&mut out)?;
    wc.wait()?;
    let elapsed = start.elapsed();
    let counted: u64 = out.trim().parse().context("wc output")?;
    if counted != written {
        bail!("wc counted {counted} lines, {written} written");
    }
    Ok((counted, elapsed))
}

struct RunResult {
    ingested: u64,
    ingest_time: Duration,
    delivered: u64,
    dropped: u64,
    ring_lines: u64,
    ring_bytes: u64,
    peak_rss_kib: u64,
}

struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
    log: PathBuf,
    query: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(bin: Option<&Path>, bounds: &[&str; 2]) -> Result<Daemon> {
    let dir = tempfile::Builder::new()
        .prefix("memlogd-bench")
        .tempdir_in("/tmp")?;
    let log = dir.path().join("log.sock");
    let query = dir.path().join("query.sock");
    let mut cmd = match bin {
        Some(b) => Command::new(b),
        None => {
            let mut c = Command::new(std::env::current_exe()?);
            c.arg("--as-memlogd");
            c
        }
    };
    cmd.arg("-socket-log")
        .arg(&log)
        .arg("-socket-query")
        .arg(&query)
        .args(["-max-lines", bounds[0], "-max-bytes", bounds[1]])
        .stderr(Stdio::null());
    let child = cmd.spawn().context("starting memlogd")?;
    let d = Daemon {
        child,
        _dir: dir,
        log,
        query,
    };
    let start = Instant::now();
    while memlogd::stats(&d.query).is_err() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("memlogd did not come up");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(d)
}

fn memlogd_run(bin: Option<&Path>, bounds: &[&str; 2], d: Duration) -> Result<RunResult> {
    let daemon = start_daemon(bin, bounds)?;
    let pid = daemon.child.id();

    // The follower: counts newlines as fast as it can.
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut follower = UnixStream::connect(&daemon.query)?;
    follower.write_all(&[1])?;
    follower.set_read_timeout(Some(Duration::from_millis(100)))?;
    let reader = {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match follower.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let nl = buf[..n].iter().filter(|&&b| b == b'\n').count();
                        delivered.fetch_add(nl as u64, Ordering::Relaxed);
                    }
                    Err(_) => {} // timeout: check `stop`
                }
            }
        })
    };
    while !memlogd::stats(&daemon.query)?
        .readers
        .iter()
        .any(|r| r.mode == "follow")
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let base = memlogd::stats(&daemon.query)?.totals.received;

    let start = Instant::now();
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            memlogd::register_fds(&daemon.log, &format!("bench-{i}"), &[r.as_fd()])?;
            Ok(std::thread::spawn(move || {
                write_lines(std::fs::File::from(w), d, i)
            }))
        })
        .collect::<Result<_>>()?;
    let written: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();

    // Ingest is done when memlogd counted every line written.
    let ingest_time = loop {
        let s = memlogd::stats(&daemon.query)?;
        if s.totals.received - base >= written {
            break start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // Delivery is done when the follower has read all memlogd sent it.
    let settle = Instant::now();
    let stats = loop {
        let s = memlogd::stats(&daemon.query)?;
        let sent = s
            .readers
            .iter()
            .find(|r| r.mode == "follow")
            .map_or(0, |r| r.sent);
        if delivered.load(Ordering::Relaxed) >= sent || settle.elapsed() > Duration::from_secs(5) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let dropped = stats
        .readers
        .iter()
        .find(|r| r.mode == "follow")
        .map_or(0, |r| r.dropped);
    Ok(RunResult {
        ingested: written,
        ingest_time,
        delivered: delivered.load(Ordering::Relaxed).min(written),
        dropped,
        ring_lines: stats.totals.lines,
        ring_bytes: stats.totals.bytes,
        peak_rss_kib: peak_rss_kib(pid).unwrap_or(0),
    })
}
