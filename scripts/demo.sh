#!/bin/bash
# The main job, end to end: installs what is missing, builds castore,
# imports a real tree (default /usr/share/doc) into the default store,
# mounts the store read-only and shows that the mount serves the same tree.
# Usage: scripts/demo.sh [TREE]
set -euo pipefail
cd "$(dirname "$0")/.."

TREE=${1:-/usr/share/doc}
scripts/deps.sh build
scripts/build.sh build release
CASTORE=$PWD/build/src/cli/castore
NAME=$(basename "$(realpath "$TREE")")

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step castore import --force "$TREE"
"$CASTORE" import --force --progress "$TREE" # --force: a rerun replaces the root of an earlier run

step castore ls
"$CASTORE" ls | sed -n "1,20p"

step castore ls -l "$NAME" "(first 10 entries)"
"$CASTORE" ls -l "$NAME" | sed -n "1,10p"

if "$CASTORE" help | grep -q '^  mount '; then
        MNT=$(mktemp -d "${TMPDIR:-/tmp}/castore-demo.XXXXXX")
        trap '"$CASTORE" umount "$MNT" 2>/dev/null || true; rmdir "$MNT" 2>/dev/null || true' EXIT
        step castore mount --daemon --list-root "$MNT"
        "$CASTORE" mount --daemon --list-root "$MNT"
        step ls "$MNT"
        ls "$MNT" | sed -n "1,20p"
        step ls -l "$MNT/$NAME" "(first 10 entries)"
        ls -l "$MNT/$NAME" | sed -n "1,10p"
        f=$(cd "$TREE" && find . -type f -name 'copyright' -print -quit)
        if [ -n "$f" ]; then
                step head -5 "$MNT/$NAME/${f#./}"
                head -5 "$MNT/$NAME/${f#./}"
        fi
        step diff -r "$TREE" "$MNT/$NAME"
        diff -r --no-dereference "$TREE" "$MNT/$NAME" && echo "identical: the mount serves the imported tree"
        step castore umount "$MNT"
        "$CASTORE" umount "$MNT"
else
        OUT=$(mktemp -d "${TMPDIR:-/tmp}/castore-demo.XXXXXX")
        trap 'rm -rf "$OUT"' EXIT
        step castore export "$NAME" "$OUT/$NAME"
        "$CASTORE" export "$NAME" "$OUT/$NAME"
        step diff -r "$TREE" "$OUT/$NAME"
        diff -r --no-dereference "$TREE" "$OUT/$NAME" && echo "identical: the store holds the imported tree"
fi

step castore verify
"$CASTORE" verify
