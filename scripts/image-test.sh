#!/usr/bin/env bash
# The device-image QEMU tests (`make image-test`) in two lanes, then boot.rs
# alone. Each test's output is printed whole when it ends, with its exit
# status and seconds; the exit status is 1 when any test failed.
#
#   IMAGE_TEST_LANES=1 scripts/image-test.sh   # one at a time
#
# Two at a time by default: 474 s for all five on a 2-core host, against
# 979 s one at a time. Under TCG each guest has one vCPU (accel.rs,
# Accel::vcpus): with two vCPUs under multi-threaded TCG, guests hung for
# minutes in soft lockups, two at a time (cuts.rs) and alone (slots.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
lanes="${IMAGE_TEST_LANES:-2}"
# Balanced by hand (TCG seconds, one vCPU, both lanes busy on a 2-core host:
# publish 233, update 73 | slots 201, cuts 147; then boot 126 alone).
lane_a=(publish update)
lane_b=(slots cuts)
solo=(boot)
if [ "$lanes" = 1 ]; then
  lane_a=(publish update slots cuts)
  lane_b=()
fi
tests=("${lane_a[@]}" "${lane_b[@]}" "${solo[@]}")
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
# --workspace --all-targets: the feature set of `make test` (dev-dependencies
# included), so nothing is rebuilt.
cargo build --workspace --all-targets
cargo test --workspace "${args[@]}" --no-run
exe() {
  cargo test --workspace --test "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])'
}
out=$(mktemp -d /tmp/outpost-image-test.XXXXXX)
run_lane() {
  local name=$1
  shift
  for t in "$@"; do
    local bin start rc=0
    bin=$(exe "$t")
    start=$(date +%s)
    (cd linuxkit/mkimage && "$bin" --include-ignored --nocapture) >"$out/$t.log" 2>&1 || rc=$?
    echo "$rc $(($(date +%s) - start))" >"$out/$t.status"
    echo "== image test $t (lane $name): exit $rc after $(($(date +%s) - start)) s"
    cat "$out/$t.log"
  done
}
t0=$(date +%s)
run_lane a "${lane_a[@]}" &
pa=$!
if [ "${#lane_b[@]}" -gt 0 ]; then
  run_lane b "${lane_b[@]}" &
  pb=$!
  wait "$pb" || true
fi
wait "$pa" || true
run_lane solo "${solo[@]}"
failed=0
echo "== image tests ($lanes lanes, $(($(date +%s) - t0)) s):"
for t in "${tests[@]}"; do
  read -r rc secs <"$out/$t.status" || { rc=missing; secs=?; }
  echo "   $t: exit $rc, $secs s"
  [ "$rc" = 0 ] || failed=1
done
rm -rf "$out"
exit "$failed"
