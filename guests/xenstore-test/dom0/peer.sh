#!/bin/bash
# dom0 side of guests/xenstore-test, started beside the guest: answers its requests with
# xenstore-write, the way a toolstack or backend would.
set -euo pipefail
name=${1:-xenstore-test}
for _ in $(seq 600); do domid=$(xl domid "$name" 2>/dev/null) && break; sleep 0.1; done
dp=/local/domain/$domid
wait_for() { for _ in $(seq 600); do [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ] && return 0; sleep 0.1; done; echo "timeout waiting for $1=$2"; exit 1; }
wait_for "$dp/data/waiting-for-dom0" 1
xenstore-write "$dp/data/from-dom0" dom0-says-hi
echo "wrote $dp/data/from-dom0"
wait_for "$dp/data/please-bump" 1
xenstore-write "$dp/data/counter" 100
xenstore-write "$dp/data/bumped" 1
echo "bumped $dp/data/counter to 100 behind the guest's transaction"
