//! `logread`: see [`memlogd::cli::logread`].

fn main() {
    std::process::exit(memlogd::cli::logread::main(std::env::args_os()));
}
