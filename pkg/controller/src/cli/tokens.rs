//! `outpost-controller token …`: admin API tokens (on the state directory;
//! the running server sees changes at the next request).

use anyhow::{bail, Result};
use clap::Subcommand;
use outpost_controller::admin::tokens::TokenStore;
use outpost_controller::StateDir;

/// `outpost-controller token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its SHA-256 is stored).
    Create {
        /// Token name (letters, digits, '-', '_', '.').
        name: String,
        /// The token may only read (GET); changes get 403.
        #[arg(long)]
        read_only: bool,
    },
    /// Names, access and creation times (never the tokens).
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: refused (401) from the next request on.
    Revoke {
        /// Token name.
        name: String,
    },
}

/// Runs one token command.
pub fn run(state: &StateDir, cmd: TokenCommand) -> Result<()> {
    let store = TokenStore::new(state);
    match cmd {
        TokenCommand::Create { name, read_only } => {
            let token = store.create(&name, read_only)?;
            eprintln!(
                "token {name} created{}; it is shown only now:",
                if read_only { " (read-only)" } else { "" }
            );
            println!("{token}");
        }
        TokenCommand::List { json } => {
            let records = store.list()?;
            if json {
                let view: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.name, "read_only": r.read_only, "created_at": r.created_at,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("{:<24} {:<10} CREATED", "NAME", "ACCESS");
                for r in records {
                    let access = if r.read_only { "read-only" } else { "full" };
                    println!("{:<24} {access:<10} {}", r.name, r.created_at);
                }
            }
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke(&name)? {
                bail!("no token named {name:?} (see `token list`)");
            }
            println!("token {name} revoked");
        }
    }
    Ok(())
}
