#!/usr/bin/env bash
# Starts (or stops) the daemons the tests use that a device gets from its
# init: a "system" containerd with its own root/state/socket under
# $OUTPOST_TEST_DIR (never the machine's default /run/containerd).
# Usage: scripts/test-daemons.sh start|stop   (prints `export …` lines on start)
set -euo pipefail
dir=${OUTPOST_TEST_DIR:-/tmp/outpost-ci}
sock="$dir/system/containerd.sock"

case "${1:-}" in
start)
  mkdir -p "$dir/system/root" "$dir/system/state"
  cat > "$dir/system/config.toml" <<TOML
version = 2
root = "$dir/system/root"
state = "$dir/system/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/system/opt"
TOML
  if [ -f "$dir/system/pid" ] && kill -0 "$(cat "$dir/system/pid")" 2>/dev/null; then
    :
  else
    rm -f "$sock" "$sock.ttrpc"
    setsid containerd --config "$dir/system/config.toml" >"$dir/system/containerd.log" 2>&1 < /dev/null &
    echo $! > "$dir/system/pid"
  fi
  for _ in $(seq 1 100); do
    if ctr --address "$sock" version >/dev/null 2>&1; then
      echo "export OUTPOST_TEST_SYSTEM_SOCKET=$sock"
      exit 0
    fi
    sleep 0.1
  done
  echo "test-daemons: system containerd did not come up; log:" >&2
  cat "$dir/system/containerd.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/system/pid" ]; then
    kill "$(cat "$dir/system/pid")" 2>/dev/null || true
    rm -f "$dir/system/pid"
  fi
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
