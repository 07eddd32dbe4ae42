//! The agent's own logs: journald when its socket exists, else stderr
//! (without colours when not a terminal). Secrets never reach a log line:
//! config types wrap them in `Secret`, whose Debug/Display print `***`.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` overrides the default `info`.
pub fn init(program: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match tracing_journald::layer() {
        Ok(j) if std::path::Path::new("/run/systemd/journal/socket").exists() => {
            registry
                .with(j.with_syslog_identifier(program.to_owned()))
                .init();
        }
        _ => {
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false);
            registry.with(fmt).init();
        }
    }
}
