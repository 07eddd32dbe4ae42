#!/usr/bin/env bash
# The `make run` demo: the reference controller on loopback (real mutual
# TLS), memlogd + outpostd (which starts the user containerd) under a demo
# root; the device onboards, config/demo.yaml is pushed through the
# controller, then the hello app's output is followed until Ctrl-C (or
# DEMO_SECONDS), and everything stops.
#   scripts/demo.sh          run the demo
#   scripts/demo.sh stop     stop a demo left running
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${OUTPOST_DEMO_ROOT:-/tmp/outpost-demo}
BIN=target/release
REGISTRY=${OUTPOST_DEMO_REGISTRY:-127.0.0.1:5117}   # config/demo.yaml names it
CONTROLLER=${OUTPOST_DEMO_CONTROLLER:-127.0.0.1:5118}
DEVICE=demo-device
export OUTPOST_ROOT=$ROOT
export OUTPOST_CONTROLLER_STATE=$ROOT/controller

stop() {
  echo "== stopping the demo"
  if pgrep -f "outpostd --root $ROOT" >/dev/null; then
    # The product's own way to remove apps: a config without them.
    printf 'apps: []\n' > "$ROOT/empty.yaml"
    $BIN/outpost-controller device set-config $DEVICE "$ROOT/empty.yaml" >/dev/null 2>&1 || true
    for _ in $(seq 1 150); do
      [ "$($BIN/outpost list 2>/dev/null | wc -l)" -le 1 ] && break
      sleep 0.2
    done
    pkill -TERM -f "outpostd --root $ROOT" 2>/dev/null || true
    sleep 0.5
  fi
  pkill -TERM -f "$ROOT" 2>/dev/null || true   # user containerd
  [ -f "$ROOT/memlogd.pid" ] && kill "$(cat "$ROOT/memlogd.pid")" 2>/dev/null || true
  [ -f "$ROOT/controller.pid" ] && kill "$(cat "$ROOT/controller.pid")" 2>/dev/null || true
  [ -f "$ROOT/registry.pid" ] && kill "$(cat "$ROOT/registry.pid")" 2>/dev/null || true
  sleep 0.5
  grep " $ROOT" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
}

if [ "${1:-}" = stop ]; then stop; exit 0; fi
[ "$(id -u)" -eq 0 ] || { echo "the demo runs real containers: run it as root" >&2; exit 1; }
stop >/dev/null 2>&1 || true
rm -rf "$ROOT"
mkdir -p "$ROOT/run" "$ROOT/etc"
echo "== building demo images"
$BIN/outpost-ocibuild build-all images -o "$ROOT/images"

echo "== starting a local OCI registry on $REGISTRY and pushing the hello image to it"
mkdir -p "$ROOT/registry"
cat > "$ROOT/registry/config.yml" <<YAML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $ROOT/registry/data } }
http: { addr: $REGISTRY }
YAML
setsid /usr/bin/docker-registry serve "$ROOT/registry/config.yml" >"$ROOT/registry.log" 2>&1 < /dev/null &
echo $! > "$ROOT/registry.pid"
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/${REGISTRY%:*}/${REGISTRY#*:}) 2>/dev/null && break; sleep 0.1; done
$BIN/outpost push "$ROOT/images/hello" "$REGISTRY/outpost/hello:latest"

echo "== outpost-controller init: CA, server, signing and onboarding certificates; the device's /config bundle"
$BIN/outpost-controller init --server "$CONTROLLER" --name localhost --open-onboarding --out "$ROOT/config" >/dev/null
echo $DEVICE > "$ROOT/config/serial"
ls "$ROOT/config"
echo "== starting outpost-controller on https://$CONTROLLER (log: $ROOT/controller.log)"
setsid $BIN/outpost-controller serve >"$ROOT/controller.out" 2>"$ROOT/controller.log" < /dev/null &
echo $! > "$ROOT/controller.pid"
for _ in $(seq 1 100); do grep -q "listening on" "$ROOT/controller.out" 2>/dev/null && break; sleep 0.1; done

echo "== starting memlogd"
setsid $BIN/memlogd -socket-log "$ROOT/run/linuxkit-external-logging.sock" -socket-query "$ROOT/run/memlogdq.sock" \
  >"$ROOT/memlogd.log" 2>&1 < /dev/null &
echo $! > "$ROOT/memlogd.pid"
echo "== starting outpostd (log: $ROOT/outpostd.log)"
setsid $BIN/outpostd --root "$ROOT" --images "$ROOT/images" \
  --backoff-initial-ms 2000 >"$ROOT/outpostd.log" 2>&1 < /dev/null &
trap stop EXIT

for _ in $(seq 1 100); do
  $BIN/outpost-controller device status $DEVICE >/dev/null 2>&1 && break
  sleep 0.2
done
echo; echo "== the device onboarded:"; $BIN/outpost-controller device list
echo; echo "== outpost-controller device set-config $DEVICE config/demo.yaml   (signed, pushed by long-poll)"
$BIN/outpost-controller device set-config $DEVICE config/demo.yaml

for _ in $(seq 1 100); do
  if $BIN/outpost list 2>/dev/null | grep -q "hello .*RUNNING"; then break; fi
  sleep 0.2
done
sleep 2
echo; echo "== outpost list"; $BIN/outpost list
echo; echo "== outpost status typo (a rejected app: the others run)"; $BIN/outpost status typo || true
echo; echo "== outpost status console"; $BIN/outpost status console
echo; echo "== outpost exec hello -- sh -c 'echo \$GREETING; ls /data'"; $BIN/outpost exec hello -- sh -c 'echo $GREETING; ls -d /data'
echo; echo "== outpost check"; $BIN/outpost check || true
echo; echo "== outpost version (config source, controller link)"; $BIN/outpost version
sleep 1
echo; echo "== what the controller knows: outpost-controller device status $DEVICE"; $BIN/outpost-controller device status $DEVICE || true
echo; echo "== outpost logs hello -f   (Ctrl-C to stop the demo)"
echo "   try in another shell: OUTPOST_ROOT=$ROOT $BIN/outpost list | status flaky | restart hello"
echo "   or: OUTPOST_CONTROLLER_STATE=$ROOT/controller $BIN/outpost-controller device set-config $DEVICE <file.yaml>"
echo "       OUTPOST_CONTROLLER_STATE=$ROOT/controller $BIN/outpost-controller device logs $DEVICE hello -f"
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout "$DEMO_SECONDS" $BIN/outpost logs hello -f --tail 5 || true
else
  $BIN/outpost logs hello -f --tail 5 || true
fi
