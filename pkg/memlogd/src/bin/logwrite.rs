//! `logwrite`: see [`memlogd::cli::logwrite`].

fn main() {
    std::process::exit(memlogd::cli::logwrite::main(std::env::args_os()));
}
