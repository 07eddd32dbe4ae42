#!/bin/sh
# Outpost initramfs /init: load the storage modules, choose the root slot
# (outpost-slot select: IMGA or IMGB by their GPT priority/tries/successful
# bits, spending a try of a slot not yet committed), find the partitions by
# GPT name (IMGA/IMGB: squashfs root, P3: ext4 /persist, CONFIG: ext4
# /config), mount them under /newroot and switch_root to its /sbin/init
# (busybox init). A slot whose root does not mount is marked failed and the
# other one boots. Anything else wrong leaves a shell on the console rather
# than a kernel panic.
export PATH=/bin
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys

rescue() {
  echo "initramfs: $*" >/dev/console
  echo "initramfs: dropping to a shell (exit to retry the boot)" >/dev/console
  setsid cttyhack sh
  exec /init
}

release=$(uname -r)
while read -r m; do
  insmod "/lib/modules/$release/$m" 2>/dev/null
done < /etc/modules.load

# /sys/class/block/<dev>/uevent carries PARTNAME= for named GPT partitions.
part() {
  for u in /sys/class/block/*/uevent; do
    if grep -qx "PARTNAME=$1" "$u"; then
      sed -n 's/^DEVNAME=//p' "$u"
      return 0
    fi
  done
  return 1
}

# The slot: outpost-slot reads the GPT itself (it repairs a damaged copy),
# so it also works before the kernel has listed the partitions.
notes=/tmp/slot-notes
: > $notes
choose() {
  i=0
  until sel=$(outpost-slot select 2>/tmp/slot.err); do
    i=$((i + 1))
    [ $i -gt 200 ] && { cat /tmp/slot.err >/dev/console; rescue "no disk with a GPT partition named IMGA after 20 s"; }
    sleep 0.1
  done
  cat /tmp/slot.err >> $notes
  cat /tmp/slot.err >/dev/console
  set -- $sel
  slot=$1 disk=$2
}
root=
for attempt in 1 2; do
  choose
  # A repaired primary table is not what the kernel read at probe time.
  blockdev --rereadpt "$disk" 2>/dev/null
  i=0
  until root=$(part "$slot"); do
    i=$((i + 1))
    [ $i -gt 100 ] && rescue "no partition named $slot after 10 s"
    sleep 0.1
  done
  if mount -t squashfs -o ro "/dev/$root" /newroot; then
    break
  fi
  echo "initramfs: /dev/$root ($slot) does not mount as squashfs; marking $slot failed" | tee -a $notes >/dev/console
  outpost-slot fail "$slot" --disk "$disk" >> $notes 2>&1
  root=
done
[ -n "$root" ] || rescue "no root slot mounts (IMGA, IMGB)"

if persist=$(part P3); then
  mount -t ext4 -o noatime "/dev/$persist" /newroot/persist ||
    { echo "initramfs: /dev/$persist (P3) does not mount; /persist is a tmpfs this boot" >/dev/console;
      mount -t tmpfs -o mode=0755 persist /newroot/persist; }
else
  echo "initramfs: no P3 partition; /persist is a tmpfs this boot" >/dev/console
  mount -t tmpfs -o mode=0755 persist /newroot/persist
fi
if config=$(part CONFIG); then
  mount -t ext4 -o ro,noatime "/dev/$config" /newroot/config ||
    echo "initramfs: /dev/$config (CONFIG) does not mount" >/dev/console
fi

# What this boot chose and why, for the agent (overwritten every boot).
if grep -q ' /newroot/persist ext4 ' /proc/mounts; then
  mkdir -p /newroot/persist/status
  { echo "slot $slot"; cat $notes; } > /newroot/persist/status/boot-slot
fi

mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
