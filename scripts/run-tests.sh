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
# Each step's wall time, printed as it ends and again at the end, so a slow
# CI run says where its minutes went.
times=()
step() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  times+=("$name: $((SECONDS - start)) s")
  echo "== $name: $((SECONDS - start)) s"
}
step fmt cargo fmt --all -- --check
step file-circles python3 scripts/check-file-circles.py
step build cargo build --workspace --all-targets
step tests cargo test --workspace --no-fail-fast -- --test-threads="${OUTPOST_TEST_THREADS:-4}"
# The controller's test matrix: the same tests again on PostgreSQL (each
# harness starts a private cluster; replicas.rs always runs on PostgreSQL),
# and the end-to-end controller tests (agent + real containers) likewise.
# The same package selection as above (--workspace), so cargo's feature
# unification is the same and nothing is rebuilt (-p would rebuild ~20 crates).
OUTPOST_CONTROLLER_BACKEND=postgres step postgres cargo test --workspace --no-fail-fast \
  --test auth --test baseos --test certs --test cli --test config_poll --test fleet --test revocation \
  --test signing --test slow_clients --test uploads --test controller --test controller_certs \
  -- --test-threads="${OUTPOST_TEST_THREADS:-4}"
step clippy cargo clippy --workspace --all-targets -- -D warnings
printf '%s\n' "${times[@]}"
