#!/bin/bash
# Builds the history guests/irmin-demo builds, with git plumbing in a scratch repository,
# and prints the merge commit's id: the end-to-end suite checks the guest printed the same.
set -euo pipefail
export GIT_DIR=$(mktemp -d)/reference.git
trap 'rm -rf "$(dirname "$GIT_DIR")"' EXIT
git init --bare -q "$GIT_DIR"
export GIT_AUTHOR_NAME="Rust unikernel" GIT_AUTHOR_EMAIL=guest@xen.invalid
export GIT_COMMITTER_NAME="Rust unikernel" GIT_COMMITTER_EMAIL=guest@xen.invalid
at() { export GIT_AUTHOR_DATE="$1 +0000" GIT_COMMITTER_DATE="$1 +0000"; }
blob() { printf '%s' "$1" | git hash-object -w --stdin; }
greeting=$(blob $'hello from a unikernel\n')
tree() { printf '100644 blob %s\tcounter\n100644 blob %s\tgreeting\n' "$(blob "$1")" "$greeting" | git mktree; }
at 1700000000; c1=$(git commit-tree "$(printf '100644 blob %s\tgreeting\n' "$greeting" | git mktree)" -m greeting)
at 1700000001; c2=$(git commit-tree "$(tree 1)" -p "$c1" -m "counter 1")
at 1700000002; c3=$(git commit-tree "$(tree 3)" -p "$c2" -m "dev: +2")
at 1700000003; c4=$(git commit-tree "$(tree 5)" -p "$c2" -m "main: +4")
at 1700000004; git commit-tree "$(tree 7)" -p "$c4" -p "$c3" -m "merge dev"
