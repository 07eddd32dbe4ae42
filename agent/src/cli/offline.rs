//! Commands that need no agent: `outpost validate FILE` and
//! `outpost completions SHELL`.

use std::path::Path;

use anyhow::{Context, Result};

use crate::daemon::source::{accept, RawConfig};

/// Checks `file` exactly as the agent's file source would: the same
/// bounded loader, parser and validation ([`accept`]), the same error
/// text. Exit 0 when the whole document and every app are valid, 1 when
/// the document is refused or an app would be rejected.
pub fn validate(file: &Path) -> Result<i32> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let raw = RawConfig {
        bytes,
        origin: format!("file:{}", file.display()),
    };
    match accept(&raw, None) {
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
        Ok(cur) => {
            for r in &cur.rejected {
                eprintln!("{}", r.summary());
            }
            let (apps, nets) = (cur.config.apps.len(), cur.config.networks.len());
            if cur.rejected.is_empty() {
                println!(
                    "{}: valid (generation {}, {apps} apps, {nets} networks)",
                    file.display(),
                    cur.config.generation
                );
                Ok(0)
            } else {
                println!(
                    "{}: {} of {} apps would be rejected (the agent applies the other {apps})",
                    file.display(),
                    cur.rejected.len(),
                    apps + cur.rejected.len()
                );
                Ok(1)
            }
        }
    }
}

/// Prints the completion script of `outpost` for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    use clap::CommandFactory;
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "outpost", &mut std::io::stdout());
    Ok(0)
}
