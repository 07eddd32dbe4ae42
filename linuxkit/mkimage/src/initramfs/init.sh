#!/bin/sh
# Outpost initramfs /init: load the storage modules, find the partitions by
# GPT name (IMGA: squashfs root, P3: ext4 /persist, CONFIG: ext4 /config),
# mount them under /newroot and switch_root to its /sbin/init (busybox init).
# Anything wrong leaves a shell on the console rather than a kernel panic.
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

i=0
until root=$(part IMGA); do
  i=$((i + 1))
  [ $i -gt 200 ] && rescue "no partition named IMGA after 20 s"
  sleep 0.1
done
mount -t squashfs -o ro "/dev/$root" /newroot || rescue "cannot mount /dev/$root (IMGA) as squashfs"

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

mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /sbin/init
