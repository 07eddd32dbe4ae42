//! `memlogd`: see [`memlogd::cli::memlogd`].

fn main() {
    std::process::exit(memlogd::cli::memlogd::main(std::env::args_os()));
}
