#!/bin/sh
# Runs xen-linux-check in the Xen lab's dom0 (Xen 4.17 in QEMU, ~2 min), next to the hello
# guest (the lab runs dom0 scripts for a guest). Prints xen-linux-check's lines, prefixed
# "hello (dom0)|". Run from the repository root: sh xen/linux/lab/run.sh
set -eu
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$(mktemp -d)
cargo build --release -p xen-linux --bin xen-linux-check
cp "$target/release/xen-linux-check" "$out/"
gcc -O2 -Wall -o "$out/evtchn-loopback-c" xen/linux/bench/evtchn_loopback.c \
    -l:libxenevtchn.a -l:libxentoolcore.a -l:libxentoollog.a
(cd guests && cargo build --release -p hello)
kernel=${CARGO_TARGET_DIR:-$root/guests/target}/x86_64-unknown-none/release/hello
cargo xtask lab run "$kernel" xl-configs/hello.cfg \
    --extra "$out/xen-linux-check" --extra "$out/evtchn-loopback-c" \
    --script xen/linux/lab/dom0-check.sh --timeout 180
