//! libtest-like argument filtering for the `harness = false` crash tests,
//! so `cargo test -p outpost-store <filter>` (and `--ignored`) behave.

/// Whether the test `name` runs with the command-line `args`.
pub fn selected(args: &[String], name: &str) -> bool {
    let mut filters = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--ignored" => return false,
            "--test-threads" | "--skip" | "--format" | "--color" | "--logfile" | "-Z" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_string()),
        }
    }
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}
