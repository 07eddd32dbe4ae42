//! `outpost`: local debug commands for an operator on the device.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = outpost_agent::cli::Cli::parse();
    match outpost_agent::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("outpost: {e:#}");
            std::process::exit(1);
        }
    }
}
