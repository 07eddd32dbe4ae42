#!/usr/bin/env bash
# The `make run` demo: memlogd + outpostd (which starts the user containerd)
# under a demo root, apps from config/demo.yaml, then follows the hello
# app's output until Ctrl-C (or DEMO_SECONDS), and stops everything.
#   scripts/demo.sh          run the demo
#   scripts/demo.sh stop     stop a demo left running
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${OUTPOST_DEMO_ROOT:-/tmp/outpost-demo}
BIN=target/release
REGISTRY=${OUTPOST_DEMO_REGISTRY:-127.0.0.1:5117}   # config/demo.yaml names it
export OUTPOST_ROOT=$ROOT

stop() {
  echo "== stopping the demo"
  if pgrep -f "outpostd --root $ROOT" >/dev/null; then
    # The product's own way to remove apps: a config without them.
    printf 'generation: 999999999\napps: []\n' > "$ROOT/etc/device.yaml"
    for _ in $(seq 1 150); do
      [ "$($BIN/outpost list 2>/dev/null | wc -l)" -le 1 ] && break
      sleep 0.2
    done
    pkill -TERM -f "outpostd --root $ROOT" 2>/dev/null || true
    sleep 0.5
  fi
  pkill -TERM -f "$ROOT" 2>/dev/null || true   # user containerd
  [ -f "$ROOT/memlogd.pid" ] && kill "$(cat "$ROOT/memlogd.pid")" 2>/dev/null || true
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
cp config/demo.yaml "$ROOT/etc/device.yaml"

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

echo "== starting memlogd"
setsid $BIN/memlogd -socket-log "$ROOT/run/linuxkit-external-logging.sock" -socket-query "$ROOT/run/memlogdq.sock" \
  >"$ROOT/memlogd.log" 2>&1 < /dev/null &
echo $! > "$ROOT/memlogd.pid"
echo "== starting outpostd (log: $ROOT/outpostd.log)"
setsid $BIN/outpostd --root "$ROOT" --config-file "$ROOT/etc/device.yaml" --images "$ROOT/images" \
  --backoff-initial-ms 2000 >"$ROOT/outpostd.log" 2>&1 < /dev/null &
trap stop EXIT

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
echo; echo "== outpost logs hello -f   (Ctrl-C to stop the demo)"
echo "   try in another shell: OUTPOST_ROOT=$ROOT $BIN/outpost list | status flaky | restart hello"
echo "   or edit $ROOT/etc/device.yaml (bump generation) and watch it converge"
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout "$DEMO_SECONDS" $BIN/outpost logs hello -f --tail 5 || true
else
  $BIN/outpost logs hello -f --tail 5 || true
fi
