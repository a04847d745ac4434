#!/bin/bash
# Pack files A/B: imports one tree into two fresh local stores, one with
# pack files for small blobs (the default) and one with --no-pack, mounts
# both (castore mount --daemon: every read verified), then measures cold
# reads (tar cf - . | wc -c) and cold metadata walks (find -printf of
# size, mode, path) of native, packed and loose, alternating, ROUNDS
# rounds, printing every round and the medians.  Also times each import.
# "cold" means after sync; echo 3 > /proc/sys/vm/drop_caches.
#
# Usage (root): bench/pack.sh [TREE [WORKDIR [ROUNDS]]]
#   (defaults /var/tmp/castore-bench/tree, /var/tmp/pack-ab, 3)
# Run it alone: flock /var/tmp/castore-bench.lock bench/pack.sh
# The work directory is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh # drop_caches, secs_of, median
CASTORE=${CASTORE:-$PWD/build/src/cli/castore}
TREE=${1:-/var/tmp/castore-bench/tree}
W=${2:-/var/tmp/pack-ab}
ROUNDS=${3:-3}
[ "$(id -u)" = 0 ] || { echo "bench/pack.sh: needs root (drop_caches, mount)" >&2; exit 1; }
[ -x "$CASTORE" ] || { echo "bench/pack.sh: no castore binary at $CASTORE" >&2; exit 1; }

cleanup() {
        for m in "$W"/mnt-*; do
                [ -d "$m" ] || continue
                if grep -q " $m " /proc/mounts; then
                        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
                fi
        done
        rm -rf "$W"
}
trap cleanup EXIT
rm -rf "$W"
mkdir -p "$W"

drop() { drop_caches; }
secs() { secs_of "$@"; }
walk() { (cd "$1" && find . -printf '%s %m %p\n' >/dev/null); }
tarall() { (cd "$1" && tar cf - . | wc -c); }

echo "tree: $(find "$TREE" -type f | wc -l) files, $(($(du -sb "$TREE" | cut -f1) >> 20)) MiB"
declare -A T
for v in packed loose; do
        flag=""
        [ $v = loose ] && flag=--no-pack
        drop
        T[import-$v]=$(secs "$CASTORE" --store "$W/store-$v" import "$TREE" --name tree --no-nix --skip-special \
                --no-progress $flag)
        echo "import $v: ${T[import-$v]} s"
        mkdir -p "$W/mnt-$v"
        "$CASTORE" --store "$W/store-$v" mount "$W/mnt-$v" --daemon
done
echo "packs: $(find "$W/store-packed/blobs/packs" -name '*.pack' | wc -l) files," \
        "$(($(du -sb "$W/store-packed/blobs/packs" | cut -f1) >> 20)) MiB;" \
        "loose blob files: packed store $(find "$W/store-packed/blobs" -path '*/packs' -prune -o -type f ! -name '*.ob' -print | wc -l)," \
        "loose store $(find "$W/store-loose/blobs" -type f ! -name '*.ob' | wc -l)"

declare -A ROOT=([native]=$TREE [packed]=$W/mnt-packed/tree [loose]=$W/mnt-loose/tree)
declare -A R
for ((i = 1; i <= ROUNDS; i++)); do
        for t in native packed loose; do
                drop
                s=$(secs tarall "${ROOT[$t]}")
                R[tar-$t]+=" $s"
                drop
                s=$(secs walk "${ROOT[$t]}")
                R[walk-$t]+=" $s"
        done
        echo "round $i: tar native/packed/loose $(echo "${R[tar-native]}" | awk '{print $NF}')" \
                "$(echo "${R[tar-packed]}" | awk '{print $NF}') $(echo "${R[tar-loose]}" | awk '{print $NF}');" \
                "walk $(echo "${R[walk-native]}" | awk '{print $NF}') $(echo "${R[walk-packed]}" | awk '{print $NF}')" \
                "$(echo "${R[walk-loose]}" | awk '{print $NF}')"
done
for m in tar walk; do
        for t in native packed loose; do
                # shellcheck disable=SC2086
                echo "$m cold $t: median $(median ${R[$m-$t]}) s (rounds:${R[$m-$t]})"
        done
done
