//! `logwrite [-socket P] [-n NAME] CMD [ARGS…]`: runs CMD with its stdout
//! logged as `NAME.out` and its stderr as `NAME` (NAME defaults to CMD),
//! copying both to logwrite's own stdout/stderr as well.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;

use crate::goflag::{Flag, Kind};
use crate::register::register_fds;

const FLAGS: &[Flag] = &[
    Flag {
        name: "socket",
        kind: Kind::Value("string"),
        default: crate::DEFAULT_LOG_SOCKET,
        help: "socket to pass fd's to memlogd",
    },
    Flag {
        name: "n",
        kind: Kind::Value("string"),
        default: "",
        help: "name of sender, defaults to first argument if left blank",
    },
];

/// Runs `logwrite` with `argv` (program name first); returns the exit code
/// (the command's, or 128 + signal if it was killed).
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let (program, args) = super::split_argv(argv, "logwrite");
    let p = match super::parse_or_usage(&program, FLAGS, " [flags] CMD [ARGS...]", args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some((cmd, cmd_args)) = p.rest.split_first() else {
        eprintln!("logwrite: no command specified");
        return 1;
    };
    let socket = Path::new(p.get("socket").unwrap_or(crate::DEFAULT_LOG_SOCKET));
    let name = match p.get("n").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => cmd.to_string_lossy().into_owned(),
    };
    let out_log = match log_pipe(socket, &format!("{name}.out")) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("logwrite: fd stdout send failed: {e}");
            return 1;
        }
    };
    let err_log = match log_pipe(socket, &name) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("logwrite: fd stderr send failed: {e}");
            return 1;
        }
    };
    let mut child = match Command::new(cmd)
        .args(cmd_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logwrite: running {}: {e}", cmd.to_string_lossy());
            return 1;
        }
    };
    let tees = [
        child
            .stdout
            .take()
            .map(|src| std::thread::spawn(move || tee(src, File::from(out_log), io::stdout()))),
        child
            .stderr
            .take()
            .map(|src| std::thread::spawn(move || tee(src, File::from(err_log), io::stderr()))),
    ];
    let status = child.wait();
    for t in tees.into_iter().flatten() {
        let _ = t.join();
    }
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("logwrite: waiting for the command: {e}");
            1
        }
    }
}

/// A pipe whose read end is registered with memlogd as `stream`; returns the
/// write end.
fn log_pipe(socket: &Path, stream: &str) -> crate::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| crate::Error::Io {
        context: "creating a pipe".into(),
        source: e.into(),
    })?;
    register_fds(socket, stream, &[r.as_fd()])?;
    Ok(w)
}

/// Copies `src` to memlogd's pipe and to `local` until EOF; a sink that fails
/// is dropped and the other one kept, so the command never blocks on it.
fn tee(mut src: impl Read, log: File, local: impl Write) {
    let mut log = Some(log);
    let mut local = Some(local);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if let Some(l) = log.as_mut() {
            if l.write_all(&buf[..n]).is_err() {
                log = None;
            }
        }
        if let Some(l) = local.as_mut() {
            if l.write_all(&buf[..n]).and_then(|()| l.flush()).is_err() {
                local = None;
            }
        }
    }
}
