//! Entry points of the three binaries (`memlogd`, `logread`, `logwrite`).
//! They live in the library so the binaries stay thin and so the benchmark
//! can run the daemon's exact code path.

pub mod logread;
pub mod logwrite;
pub mod memlogd;

use std::ffi::OsString;

use crate::goflag::{self, Flag, FlagError, Parsed};

/// Parses Go-style flags; on `-h` or an error prints the usage and returns
/// the exit code to use (0 for help, 2 for errors, as Go's `flag`).
fn parse_or_usage(
    program: &str,
    flags: &[Flag],
    synopsis: &str,
    args: impl IntoIterator<Item = OsString>,
) -> Result<Parsed, i32> {
    match goflag::parse(flags, args) {
        Ok(p) => Ok(p),
        Err(FlagError::Help) => {
            eprint!("{}", goflag::usage(program, flags, synopsis));
            Err(0)
        }
        Err(FlagError::Bad(msg)) => {
            eprintln!("{msg}");
            eprint!("{}", goflag::usage(program, flags, synopsis));
            Err(2)
        }
    }
}

/// Splits `argv` into the program's base name and the arguments.
fn split_argv(argv: impl IntoIterator<Item = OsString>, default: &str) -> (String, Vec<OsString>) {
    let mut it = argv.into_iter();
    let program = it
        .next()
        .map(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map_or_else(|| default.to_string(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| default.to_string());
    (program, it.collect())
}
