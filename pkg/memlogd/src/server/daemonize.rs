//! `-daemonize`: bind first (so clients can connect as soon as the parent
//! exits), then re-execute with the bound sockets passed by fd number, as
//! linuxkit's memlogd does.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::process::Command;

use super::Server;
use crate::error::{Error, Result};

/// Starts `program` (memlogd itself) as the daemon, handing it the bound
/// sockets with `-fd-log`/`-fd-query` and the same bounds. The caller exits.
pub(crate) fn daemonize(server: Server, program: &OsString) -> Result<()> {
    let io = |context: &str| {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    };
    // dup() clears CLOEXEC, so the child inherits these (and only these).
    let log =
        nix::unistd::dup(&server.log_sock).map_err(|e| io("dup of the log socket")(e.into()))?;
    let query = nix::unistd::dup(&server.query_sock)
        .map_err(|e| io("dup of the query socket")(e.into()))?;
    let c = &server.cfg;
    let args: Vec<String> = vec![
        "-fd-log".into(),
        log.as_raw_fd().to_string(),
        "-fd-query".into(),
        query.as_raw_fd().to_string(),
        "-max-lines".into(),
        c.max_lines.to_string(),
        "-max-line-len".into(),
        c.max_line_len.to_string(),
        "-max-bytes".into(),
        c.max_bytes.to_string(),
        "-max-readers".into(),
        c.max_readers.to_string(),
        "-max-streams".into(),
        c.max_streams.to_string(),
        "-fifo-check-interval".into(),
        format!("{}ms", c.fifo_check_interval.as_millis().max(1)),
    ];
    Command::new(program)
        .args(args)
        .spawn()
        .map_err(io("re-executing memlogd as the daemon"))?;
    Ok(())
}
