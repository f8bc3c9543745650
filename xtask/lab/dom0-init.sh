#!/bin/bash
# PID 1 of the lab's dom0 (kernel command line: init=/sbin/lab-init).
#
# Does what systemd + xencommons would do on a real dom0, and nothing more: mount the
# pseudo file systems, load the Xen backend drivers, start xenstored and xenconsoled
# (guest consoles logged to /var/log/xen/console/guest-<name>.log), create bridge xenbr0,
# then run /job/run-suite.sh from the job disk (/dev/vdb) and reboot. QEMU runs with
# -no-reboot, so the reboot ends QEMU and the host reads the results off the job disk.
#
# Everything meant for the host is one line on the console starting with "@@LAB ".
# Kernel command line: lab.shell=1 gives an interactive shell instead of the job.
export PATH=/usr/lib/xen-4.17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
exec </dev/console >/dev/console 2>&1

lab() { echo "@@LAB $*"; }
note() { lab "note $*"; }

reboot_now() {
    # minbase has no reboot(8); sysrq-b is an immediate reboot(2). Xen then resets the
    # machine and QEMU (-no-reboot) exits. Everything is synced and unmounted before.
    sync
    umount /job 2>/dev/null
    sync
    echo b > /proc/sysrq-trigger
    sleep 10
    busybox reboot -f
}

mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mountpoint -q /run || mount -t tmpfs -o mode=755,size=64M tmpfs /run
mountpoint -q /tmp || mount -t tmpfs -o size=512M tmpfs /tmp
mount -o remount,rw /
hostname lab-dom0
lab "dom0-up kernel=$(uname -r) xen=$(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)$(cat /sys/hypervisor/version/extra)"

modprobe -a xenfs xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback loop bridge \
    || note "modprobe of a Xen backend module failed"
mountpoint -q /proc/xen || mount -t xenfs xenfs /proc/xen || note "cannot mount xenfs"
mkdir -p /run/xen /run/xenstored /var/log/xen/console /var/lib/xen/dump /var/lib/xenstored

xenstored --pid-file /run/xenstored.pid || lab "fatal xenstored did not start"
for _ in $(seq 100); do xenstore-read / >/dev/null 2>&1 && break; sleep 0.1; done
xen-init-dom0 >/dev/null || note "xen-init-dom0 failed"
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
    --timestamp=none || lab "fatal xenconsoled did not start"

ip link set lo up
ip link add xenbr0 type bridge && ip addr add 10.99.0.1/24 dev xenbr0 && ip link set xenbr0 up

lab "dom0-ready uptime=$(cut -d' ' -f1 /proc/uptime)"

if grep -qw 'lab.shell=1' /proc/cmdline; then
    note "interactive shell; leave it to shut the lab down"
    setsid -c /bin/bash -l
    reboot_now
fi

mkdir -p /job
for _ in $(seq 50); do [ -b /dev/vdb ] && break; sleep 0.1; done
if ! mount /dev/vdb /job; then
    lab "fatal no job disk (/dev/vdb)"
    reboot_now
fi
mkdir -p /job/out
if [ -x /job/run-suite.sh ]; then
    (cd /job && ./run-suite.sh)
    echo "$?" > /job/out/suite-status
else
    lab "fatal the job disk has no run-suite.sh"
fi
lab "dom0-done"
reboot_now
