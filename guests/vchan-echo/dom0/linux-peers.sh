#!/bin/bash
# dom0 side of guests/vchan-echo with extra="peer=0 role=both sessions=4": the guest serves
# four echo sessions, then connects to dom0 as a client. dom0 peers:
#   echo   libxenvchan client (vchan-peer), source + verify          (timing)
#   echo2  our Linux stack (vchan-cat on xen-linux), the same exchange (timing: the ratio)
#   echo3  vchan-cat streaming random bytes through the guest's echo, compared with cmp
#   echo4  vchan-cat killed with SIGKILL mid-session: the kernel's unmap notification clears
#          cli_live, so the guest sees the end of the stream instead of waiting forever
#   echo-back  vchan-cat listening as the guest's echo server (a fifo loops its output back)
# Ships with vchan-peer (vchan/interop/build-peer.sh) and vchan-cat next to it.
set -euo pipefail
here=$(dirname "$0")
name=${GUEST_NAME:-vchan-echo}
domid=${DOMID:-}
if [ -z "$domid" ]; then
    for _ in $(seq 600); do domid=$(xl domid "$name" 2>/dev/null) && break; sleep 0.1; done
fi
bytes=${VCHAN_BYTES:-1000000}
wait_key() { for _ in $(seq 600); do xenstore-read "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "dom0: $1 never appeared"; return 1; }
base=/local/domain/$domid/data/vchan/0
wait_key "$base/echo/ring-ref"
"$here/vchan-peer" client "$domid" "$base/echo" source "$bytes" 1
wait_key "$base/echo2/ring-ref"
"$here/vchan-cat" --source "$bytes" 1 connect "$domid" echo2
wait_key "$base/echo3/ring-ref"
head -c $((3 * bytes)) /dev/urandom > /tmp/vchan-in
"$here/vchan-cat" -w 3 connect "$domid" echo3 < /tmp/vchan-in > /tmp/vchan-out
cmp /tmp/vchan-in /tmp/vchan-out && echo "dom0: vchan-cat streamed $((3 * bytes)) bytes through the guest's echo, identical"
wait_key "$base/echo4/ring-ref"
rm -f /tmp/vchan-hold && mkfifo /tmp/vchan-hold
"$here/vchan-cat" connect "$domid" echo4 0<>/tmp/vchan-hold >/dev/null &
victim=$!
sleep 2
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
echo "dom0: killed vchan-cat (pid $victim) in session echo4"
rm -f /tmp/vchan-loop && mkfifo /tmp/vchan-loop
"$here/vchan-cat" -t 60 listen "$domid" echo-back 0<>/tmp/vchan-loop 1>/tmp/vchan-loop
echo "dom0: vchan-cat served the guest's client"
