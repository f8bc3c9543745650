#!/bin/bash
# dom0 script for the e2e suite: our `xs` against the real xenstored and xenstore-utils,
# over the xenstored socket and over /dev/xen/xenbus (the transport a Linux domU uses).
# `xs` is shipped next to this script; XENSTORED_PATH pointing nowhere makes it fall back
# to the device, as libxenstore's xs_open does.
set -euo pipefail
chmod +x ./xs
base=/local/domain/0/data/xs-check
device() { XENSTORED_PATH=/nonexistent/socket ./xs "$@"; }

./xs write "$base/socket" "written over the socket"
test "$(xenstore-read "$base/socket")" = "written over the socket"
echo "xs write over the socket: xenstore-read agrees"

test -e /dev/xen/xenbus
device write "$base/device" "written over xenbus"
test "$(xenstore-read "$base/device")" = "written over xenbus"
xenstore-write "$base/from-utils" 42
test "$(device read "$base/from-utils")" = 42
echo "xs over /dev/xen/xenbus: write and read agree with xenstore-utils"

xenstore-ls -f "$base" > utils-ls.out
device ls -f "$base" > xs-ls.out
diff utils-ls.out xs-ls.out
echo "xs ls -f over /dev/xen/xenbus matches xenstore-ls -f"

# A watch over the device sees a write made with xenstore-write.
device watch -n 2 "$base/watched" > watch.out &
watcher=$!
for _ in $(seq 50); do [ -s watch.out ] && break; sleep 0.1; done
xenstore-write "$base/watched" now
wait "$watcher"
grep -q "$base/watched" watch.out
echo "xs watch over /dev/xen/xenbus saw xenstore-write's change"

device rm "$base"
! xenstore-read "$base/socket" 2>/dev/null
echo "xs rm over /dev/xen/xenbus removed the tree"
