#!/bin/bash
# Per-request latency of castore mount, FUSE over io_uring against reads
# of /dev/fuse, in the same run: alternating rounds, each mounting the
# same store both ways and timing N GETATTRs (statx with
# AT_STATX_FORCE_SYNC) and N 4 KiB O_DIRECT READs of one file, one
# request at a time (bench/fuse-latency.c).  Prints, per mode, the medians
# over the rounds of p50, p99 and mean in microseconds, and the io_uring /
# /dev/fuse ratios.  Sets the fuse module's enable_uring parameter to Y
# for the run and restores it.
#
# Usage (root): nice bench/uring.sh [ROUNDS [N]]   (default 3 rounds, 20000)
# Needs: castore and bench/fuse-latency built (CASTORE, FUSE_LATENCY).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CASTORE=${CASTORE:-$PWD/build/src/cli/castore}
LAT=${FUSE_LATENCY:-$(dirname "$CASTORE")/../../bench/fuse-latency}
ROUNDS=${1:-3}
N=${2:-20000}
PARAM=/sys/module/fuse/parameters/enable_uring
[ "$(id -u)" = 0 ] || { echo "bench/uring.sh: needs root (mount, $PARAM)" >&2; exit 1; }
[ -e "$PARAM" ] || { echo "bench/uring.sh: this kernel has no FUSE over io_uring" >&2; exit 1; }
[ -x "$CASTORE" ] && [ -x "$LAT" ] || { echo "bench/uring.sh: build castore and bench/fuse-latency first" >&2; exit 1; }

W=$(mktemp -d /var/tmp/castore-uring.XXXXXX)
SAVED=$(cat "$PARAM")
PID=
cleanup() {
        if grep -q " $W/mnt " /proc/mounts; then umount "$W/mnt" 2>/dev/null || umount -l "$W/mnt" || true; fi
        [ -z "$PID" ] || wait "$PID" 2>/dev/null || true
        echo "$SAVED" >"$PARAM"
        rm -rf "$W"
}
trap cleanup EXIT
echo Y >"$PARAM"

mkdir -p "$W/src" "$W/mnt"
head -c $((1 << 20)) /dev/urandom >"$W/src/file"
"$CASTORE" --store "$W/store" import "$W/src" --name t >/dev/null 2>&1

# one MODE (on|off): mounts, times both operations, unmounts; prints
# "getattr p50 p90 p99 mean" and "read4k ..." lines
one() {
        "$CASTORE" --store "$W/store" mount "$W/mnt" -v --io-uring="$1" >"$W/log" 2>&1 &
        PID=$!
        local i
        for i in $(seq 500); do grep -q '^castore: Serving ' "$W/log" && break; sleep 0.02; done
        grep -q '^castore: Serving ' "$W/log" || { cat "$W/log" >&2; exit 1; }
        if [ "$1" = on ]; then grep -q 'over io_uring' "$W/log" || { echo "not over io_uring" >&2; exit 1; }; fi
        echo "getattr $("$LAT" getattr "$W/mnt/t/file" "$N")"
        echo "read4k $("$LAT" read4k "$W/mnt/t/file" "$N")"
        umount "$W/mnt"
        wait "$PID"
        PID=
}

declare -A V
for ((r = 0; r < ROUNDS; r++)); do
        for mode in on off; do
                while read -r op n p50 p90 p99 mean; do
                        V[$mode.$op.p50]+="$p50 "
                        V[$mode.$op.p99]+="$p99 "
                        V[$mode.$op.mean]+="$mean "
                done < <(one $mode)
        done
done

echo "castore mount, one request at a time, $ROUNDS rounds x $N requests, medians over rounds (microseconds)"
printf '| operation | transport | p50 | p99 | mean |\n|---|---|---:|---:|---:|\n'
for op in getattr read4k; do
        for mode in on off; do
                printf '| %s | %s | %s | %s | %s |\n' "$op" "$([ $mode = on ] && echo io_uring || echo /dev/fuse)" \
                        "$(median ${V[$mode.$op.p50]})" "$(median ${V[$mode.$op.p99]})" "$(median ${V[$mode.$op.mean]})"
        done
        printf '| %s | io_uring / /dev/fuse | %s | %s | %s |\n' "$op" \
                "$(ratio "$(median ${V[on.$op.p50]})" "$(median ${V[off.$op.p50]})")" \
                "$(ratio "$(median ${V[on.$op.p99]})" "$(median ${V[off.$op.p99]})")" \
                "$(ratio "$(median ${V[on.$op.mean]})" "$(median ${V[off.$op.mean]})")"
done
