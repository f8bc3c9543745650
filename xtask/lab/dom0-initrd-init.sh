#!/bin/busybox sh
# /init of the lab dom0's initramfs: load the few modules needed to mount the root disk
# (virtio block + ext4, listed in /modules in dependency order), then switch to the root
# file system and its init. A few MB instead of Debian's ~35 MB initramfs: under TCG, Xen
# copying and the kernel unpacking a large initramfs cost tens of seconds per boot.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
while read -r module; do
    /bin/busybox insmod "/lib/modules/$module" || echo "lab initramfs: insmod $module failed"
done < /modules
for _ in $(/bin/busybox seq 100); do
    [ -b /dev/vda ] && break
    /bin/busybox sleep 0.1
done
if ! /bin/busybox mount -t ext4 -o rw /dev/vda /newroot; then
    echo "@@LAB fatal lab initramfs: cannot mount the root disk /dev/vda"
    echo b > /proc/sysrq-trigger
fi
/bin/busybox umount /proc /sys
/bin/busybox mount --move /dev /newroot/dev
exec /bin/busybox switch_root /newroot /usr/sbin/lab-init
