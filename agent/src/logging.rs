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

/// On a device (root `/`), also sends a panic's message, and a fatal
/// error given to [`kmsg`], to the kernel log: the agent's own log is in
/// memlogd's RAM, which a watchdog reset loses, while the kernel log
/// reaches the serial console (and pstore where there is one).
pub fn fatal_to_kernel_log(program: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kmsg(&format!("{program}: {info}"));
        default(info);
    }));
}

/// Writes `line` to `/dev/kmsg` at priority "error" (best effort).
pub fn kmsg(line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        // One record per write; the kernel caps a record at ~1 KiB.
        let clipped: String = line.chars().take(900).collect();
        let _ = f.write_all(format!("<3>{clipped}\n").as_bytes());
    }
}
