#!/bin/sh
# Builds vchan-peer against Xen's libxenvchan, for a Xen domain (dom0 in the lab).
# Usage: build-peer.sh [output]   (needs gcc and libxen-dev; the binary needs libxenvchan
# at run time, which Debian's xen-utils-4.17 pulls in)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/vchan-peer}
${CC:-cc} -O2 -Wall -o "$out" "$here/vchan-peer.c" -lxenvchan
echo "built $out"
