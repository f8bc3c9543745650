#!/bin/bash
# dom0 side of guests/vchan-echo, started beside the guest (background): Xen's own
# libxenvchan (vchan/interop/vchan-peer.c, built with vchan/interop/build-peer.sh and
# shipped next to this script) as the peer, in both roles.
#   1. the guest serves /local/domain/<guest>/data/vchan/0/echo; libxenvchan's client
#      sends VCHAN_BYTES (default 1000000) and verifies the echo;
#   2. libxenvchan serves /local/domain/0/data/vchan/<guest>/echo-back; the guest's client
#      sends and verifies.
set -euo pipefail
peer=${VCHAN_PEER:-$(dirname "$0")/vchan-peer}
name=${GUEST_NAME:-vchan-echo}
domid=${DOMID:-}
if [ -z "$domid" ]; then
    for _ in $(seq 600); do domid=$(xl domid "$name" 2>/dev/null) && break; sleep 0.1; done
fi
bytes=${VCHAN_BYTES:-1000000}
srv=/local/domain/$domid/data/vchan/0/echo
for _ in $(seq 600); do xenstore-read "$srv/ring-ref" >/dev/null 2>&1 && break; sleep 0.1; done
echo "dom0: libxenvchan client -> guest server at $srv"
"$peer" client "$domid" "$srv" source "$bytes" 1
echo "dom0: libxenvchan server for the guest's client"
"$peer" ${VCHAN_SIZES:+-s "$VCHAN_SIZES"} server "$domid" "/local/domain/0/data/vchan/$domid/echo-back" echo
