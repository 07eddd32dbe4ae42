#!/usr/bin/env bash
# Installs the Debian packages Outpost needs to build, test and run.
# Idempotent: installs only what is missing and is quiet when nothing is.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

PACKAGES=(
  containerd            # system + user container runtime (1.6 on Debian 12)
  runc                  # default OCI runtime
  runsc                 # gVisor, for the runsc runtime class
  busybox-static        # the demo/test images are built from it
  skopeo                # independent check of the OCI layouts ocibuild writes
  umoci                 # (idem)
  protobuf-compiler     # containerd-client's build script needs protoc
  pkg-config
  iproute2
  iptables              # CNI bridge/portmap/firewall plugins program it
  containernetworking-plugins  # CNI plugins for app networking (/usr/lib/cni)
  procps
  psmisc
  ca-certificates
  docker-registry       # pull tests and bench run a real registry on loopback
  apache2-utils         # htpasswd -B for the registry's basic-auth tests
  linux-image-amd64     # device image: the kernel and modules it boots (make image)
  squashfs-tools        # device image: read-only root (mksquashfs)
  gdisk                 # device image: GPT (sgdisk)
  e2fsprogs             # device image: ext4 /persist and /config (mke2fs -d)
  binutils              # device image: strip
  qemu-system-x86       # device image boot test (make image-test)
  chromium              # web console tests: headless browser (tests/tests/console.rs)
  chromium-driver       # (idem) chromedriver, the WebDriver server the tests start
)
PACKAGES+=("$@")

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them once per hour at most.
stamp=/var/lib/apt/periodic/outpost-update-stamp
if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +60 2>/dev/null)" ]; then
  apt-get update -qq
  mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts containerd as a service where systemd runs; Outpost never uses
# the machine's default instance, so nothing else is done here.
