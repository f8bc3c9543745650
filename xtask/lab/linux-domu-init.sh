#!/bin/busybox sh
# /init of the Linux PV domU baseline: the dom0's Debian kernel + this busybox initramfs.
# It prints one line and powers off, so the lab can compare Linux's time from `xl create`
# to its first console line with our unikernels'.
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo "linux-domU: up, kernel $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime)s"
poweroff -f
