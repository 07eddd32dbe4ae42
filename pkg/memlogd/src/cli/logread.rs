//! `logread [-socket P] [-f] [-F] [-json] [-source NAME] [-stats]`.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

use crate::client::{QueryConn, QueryMode};
use crate::entry::LogEntry;
use crate::error::Error;
use crate::goflag::{Flag, Kind};
use crate::stats::{Stats, StatsLine};

const FLAGS: &[Flag] = &[
    Flag {
        name: "socket",
        kind: Kind::Value("string"),
        default: crate::DEFAULT_QUERY_SOCKET,
        help: "memlogd log query socket",
    },
    Flag {
        name: "F",
        kind: Kind::Bool,
        default: "",
        help: "dump log, then follow",
    },
    Flag {
        name: "f",
        kind: Kind::Bool,
        default: "",
        help: "follow log buffer",
    },
    Flag {
        name: "json",
        kind: Kind::Bool,
        default: "",
        help: "print memlogd's JSON lines as received",
    },
    Flag {
        name: "source",
        kind: Kind::Value("string"),
        default: "",
        help: "only print entries of this source",
    },
    Flag {
        name: "stats",
        kind: Kind::Bool,
        default: "",
        help: "print memlogd's counters and exit",
    },
];

/// Runs `logread` with `argv` (program name first); returns the exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let (program, args) = super::split_argv(argv, "logread");
    let p = match super::parse_or_usage(&program, FLAGS, "", args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let socket = p.get("socket").unwrap_or(crate::DEFAULT_QUERY_SOCKET);
    let mode = if p.flag("stats") {
        QueryMode::Stats
    } else if p.flag("F") {
        QueryMode::DumpFollow
    } else if p.flag("f") {
        QueryMode::Follow
    } else {
        QueryMode::Dump
    };
    let opts = Options {
        json: p.flag("json"),
        source: p.get("source").filter(|s| !s.is_empty()),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let result = QueryConn::connect(Path::new(socket), mode).and_then(|conn| {
        if mode == QueryMode::Stats {
            print_stats(conn, opts.json, &mut out)
        } else {
            print_entries(conn, &opts, &mut out)
        }
    });
    let mut code = 0;
    if let Err(e) = result {
        eprintln!("logread: {e}");
        code = 1;
    }
    if let Err(e) = out.flush() {
        if let Some(e) = io_failure(&e) {
            eprintln!("logread: {e}");
            code = 1;
        }
    }
    code
}

struct Options<'a> {
    json: bool,
    source: Option<&'a str>,
}

/// A failed write to stdout: a closed pipe (`logread | head`) is a normal end.
fn io_failure(e: &io::Error) -> Option<Error> {
    (e.kind() != io::ErrorKind::BrokenPipe).then(|| Error::Io {
        context: "writing to stdout".into(),
        source: io::Error::new(e.kind(), e.to_string()),
    })
}

fn print_entries(
    mut conn: QueryConn,
    opts: &Options<'_>,
    out: &mut impl Write,
) -> Result<(), Error> {
    while let Some(line) = conn.next_line()? {
        let printed = match (opts.json, opts.source) {
            (true, None) => writeln!(out, "{line}"),
            _ => match LogEntry::from_json(line) {
                Ok(e) if opts.source.is_some_and(|s| s != e.source) => Ok(()),
                Ok(_) if opts.json => writeln!(out, "{line}"),
                Ok(e) => writeln!(out, "{e}"),
                Err(err) => {
                    eprintln!("logread: skipping unparsable line ({err}): {line}");
                    Ok(())
                }
            },
        };
        let flushed = printed.and_then(|()| {
            if conn.has_buffered() {
                Ok(())
            } else {
                out.flush()
            }
        });
        if let Err(e) = flushed {
            return match io_failure(&e) {
                None => Ok(()),
                Some(err) => Err(err),
            };
        }
    }
    Ok(())
}

fn print_stats(mut conn: QueryConn, json: bool, out: &mut impl Write) -> Result<(), Error> {
    let mut lines = Vec::new();
    while let Some(line) = conn.next_line()? {
        if json {
            let _ = writeln!(out, "{line}");
        } else if let Ok(l) = serde_json::from_str::<StatsLine>(line) {
            lines.push(l);
        }
    }
    if !json {
        let _ = write_stats_table(&Stats::from_lines(lines), out);
    }
    Ok(())
}

fn write_stats_table(s: &Stats, out: &mut impl Write) -> io::Result<()> {
    let t = &s.totals;
    writeln!(
        out,
        "ring: {}/{} lines, {}/{} bytes, max line {} bytes",
        t.lines, t.max_lines, t.bytes, t.max_bytes, t.max_line_len
    )?;
    writeln!(
        out,
        "lines: {} received, {} truncated, {} evicted; reader drops: {}",
        t.received, t.truncated, t.evicted, t.reader_drops
    )?;
    writeln!(
        out,
        "streams: {} active, {} opened, {} rejected, {} FIFOs released; \
         datagrams rejected: {}",
        t.streams_active,
        t.streams_opened,
        t.streams_rejected,
        t.fifos_released,
        t.rejected_datagrams
    )?;
    writeln!(
        out,
        "readers: {} active, {} refused, {} bad modes; own messages suppressed: {}",
        t.readers_active, t.readers_rejected, t.bad_modes, t.self_suppressed
    )?;
    writeln!(
        out,
        "dumps: {}/{} bytes kept beyond the ring, {} entries dropped over it, \
         {} dumps served from the live ring",
        t.dump_bytes, t.max_dump_bytes, t.dump_drops, t.dumps_unsnapshotted
    )?;
    writeln!(
        out,
        "\n{:<40} {:>7} {:>10} {:>9} {:>9} {:>6} {:>9}",
        "SOURCE", "STREAMS", "RECEIVED", "TRUNCATED", "EVICTED", "LINES", "BYTES"
    )?;
    for src in &s.sources {
        writeln!(
            out,
            "{:<40} {:>7} {:>10} {:>9} {:>9} {:>6} {:>9}",
            src.source, src.streams, src.received, src.truncated, src.evicted, src.lines, src.bytes
        )?;
    }
    writeln!(
        out,
        "\n{:<8} {:<12} {:>10} {:>9}",
        "READER", "MODE", "SENT", "DROPPED"
    )?;
    for r in &s.readers {
        writeln!(
            out,
            "{:<8} {:<12} {:>10} {:>9}",
            r.id, r.mode, r.sent, r.dropped
        )?;
    }
    Ok(())
}
