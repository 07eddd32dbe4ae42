#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the test daemons,
# runs every test against the real components, checks formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "$(id -u)" -ne 0 ]; then
  echo "make test drives real containers (namespaces, overlayfs, cgroups): run it as root" >&2
  exit 1
fi
eval "$(scripts/test-daemons.sh start)"
trap 'scripts/test-daemons.sh stop' EXIT
cargo fmt --all -- --check
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast -- --test-threads="${OUTPOST_TEST_THREADS:-4}"
cargo clippy --workspace --all-targets -- -D warnings
