#!/bin/sh
# Power cuts during a base OS update, N randomised trials (default 20):
# QEMU is killed at a random moment of an update A → B and the disk must
# boot a good slot afterwards (linuxkit/mkimage/tests/cuts.rs). Needs QEMU
# and the release binaries; takes about 2 minutes per trial under TCG.
#   scripts/bench-slot-cuts.sh [TRIALS]
set -eu
cd "$(dirname "$0")/.."
trials=${1:-20}
cargo build --release -p outpost-agent -p memlogd -p outpost-baseos
OUTPOST_CUT_TRIALS=$trials cargo test --release -p outpost-mkimage --test cuts -- \
  --include-ignored --nocapture
