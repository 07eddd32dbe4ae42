//! `memlogd [flags]`: the daemon, with linuxkit's flags plus Outpost's bounds.

use std::ffi::OsString;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::Config;
use crate::goflag::{Flag, FlagError, Kind, Parsed};
use crate::server::{daemonize, Server};

const FLAGS: &[Flag] = &[
    Flag {
        name: "socket-log",
        kind: Kind::Value("string"),
        default: crate::DEFAULT_LOG_SOCKET,
        help: "unix domain socket to listen for new fds to add to log. Overridden by -fd-log",
    },
    Flag {
        name: "socket-query",
        kind: Kind::Value("string"),
        default: crate::DEFAULT_QUERY_SOCKET,
        help: "unix domain socket for responding to log queries. Overridden by -fd-query",
    },
    Flag {
        name: "fd-log",
        kind: Kind::Value("int"),
        default: "-1",
        help: "an existing SOCK_DGRAM socket for receiving fd's. Overrides -socket-log.",
    },
    Flag {
        name: "fd-query",
        kind: Kind::Value("int"),
        default: "-1",
        help: "an existing SOCK_STREAM for receiving log read requests. Overrides -socket-query.",
    },
    Flag {
        name: "max-lines",
        kind: Kind::Value("int"),
        default: "5000",
        help: "Number of log lines to keep in memory",
    },
    Flag {
        name: "max-line-len",
        kind: Kind::Value("int"),
        default: "1024",
        help: "Maximum line length recorded. Additional bytes are dropped.",
    },
    Flag {
        name: "max-bytes",
        kind: Kind::Value("int"),
        default: "8388608",
        help: "Bytes of encoded log entries to keep in memory",
    },
    Flag {
        name: "max-dump-bytes",
        kind: Kind::Value("int"),
        default: "-1",
        help: "Bytes dumps may keep alive beyond the ring for slow readers (-1: same as -max-bytes, 0: none)",
    },
    Flag {
        name: "max-readers",
        kind: Kind::Value("int"),
        default: "128",
        help: "Query connections served at once; more are closed",
    },
    Flag {
        name: "max-streams",
        kind: Kind::Value("int"),
        default: "4096",
        help: "Log streams (fds) read at once; more are closed",
    },
    Flag {
        name: "fifo-check-interval",
        kind: Kind::Value("duration"),
        default: "2s",
        help: "How often FIFO streams are checked for having been removed",
    },
    Flag {
        name: "daemonize",
        kind: Kind::Bool,
        default: "",
        help: "Bind sockets and then daemonize.",
    },
];

/// Runs the daemon with `argv` (program name first); returns the exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let (program, args) = super::split_argv(argv, "memlogd");
    let parsed = match super::parse_or_usage(&program, FLAGS, "", args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let cfg = match config_from(&parsed) {
        Ok(c) => c,
        Err(FlagError::Bad(msg)) => {
            eprintln!("{msg}");
            return 2;
        }
        Err(FlagError::Help) => return 0,
    };
    raise_fd_limit();
    let server = match Server::bind(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("memlogd: {e}");
            return 1;
        }
    };
    if parsed.flag("daemonize") {
        let exe = std::env::current_exe()
            .map(OsString::from)
            .unwrap_or_else(|_| OsString::from(&program));
        return match daemonize(server, &exe) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("memlogd: {e}");
                1
            }
        };
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(16)
        .thread_name("memlogd")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("memlogd: starting the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(server.run_until_signal()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("memlogd: {e}");
            1
        }
    }
}

fn config_from(p: &Parsed) -> Result<Config, FlagError> {
    let d = Config::default();
    let fd = |name| -> Result<Option<i32>, FlagError> {
        let v = p.int(name, -1)?;
        if v < 0 {
            return Ok(None);
        }
        i32::try_from(v)
            .map(Some)
            .map_err(|_| FlagError::Bad(format!("invalid value {v} for flag -{name}")))
    };
    Ok(Config {
        socket_log: p.get("socket-log").map_or(d.socket_log, Into::into),
        socket_query: p.get("socket-query").map_or(d.socket_query, Into::into),
        fd_log: fd("fd-log")?,
        fd_query: fd("fd-query")?,
        max_lines: p.size("max-lines", d.max_lines)?,
        max_line_len: p.size("max-line-len", d.max_line_len)?,
        max_bytes: p.size("max-bytes", d.max_bytes)?,
        max_dump_bytes: match p.int("max-dump-bytes", -1)? {
            -1 => None,
            v => Some(usize::try_from(v).map_err(|_| {
                FlagError::Bad(format!("invalid value {v} for flag -max-dump-bytes"))
            })?),
        },
        max_readers: p.size("max-readers", d.max_readers)?,
        max_streams: p.size("max-streams", d.max_streams)?,
        fifo_check_interval: p.duration("fifo-check-interval", d.fifo_check_interval)?,
        mode_timeout: Duration::from_secs(10),
    })
}

/// Like Go's runtime, lift the soft fd limit to the hard one: every stream
/// and reader is an fd.
fn raise_fd_limit() {
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goflag::parse;

    #[test]
    fn flags_map_to_config() {
        let args = [
            "-socket-log=/a",
            "-socket-query",
            "/b",
            "-max-lines",
            "10",
            "-max-bytes=100000",
            "-fd-log",
            "-1",
            "-fifo-check-interval",
            "250ms",
        ];
        let p = parse(FLAGS, args.map(OsString::from)).unwrap();
        let c = config_from(&p).unwrap();
        assert_eq!(c.socket_log, std::path::Path::new("/a"));
        assert_eq!(c.socket_query, std::path::Path::new("/b"));
        assert_eq!(
            (c.max_lines, c.max_line_len, c.max_bytes),
            (10, 1024, 100_000)
        );
        assert_eq!(c.fd_log, None);
        assert_eq!(c.max_dump_bytes, None);
        let p = parse(FLAGS, ["-max-dump-bytes", "0"].map(OsString::from)).unwrap();
        assert_eq!(config_from(&p).unwrap().max_dump_bytes, Some(0));
        let p = parse(FLAGS, ["-max-dump-bytes", "-2"].map(OsString::from)).unwrap();
        assert!(config_from(&p).is_err());
        assert_eq!(c.fifo_check_interval, Duration::from_millis(250));
        let p = parse(FLAGS, ["-max-lines", "-5"].map(OsString::from)).unwrap();
        assert!(config_from(&p).is_err());
    }
}
