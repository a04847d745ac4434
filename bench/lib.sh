# Shared helpers for the benchmarks in bench/ (sourced).
#   bench_tree DIR       builds (once) the benchmark tree: >= 30,000 files
#                        and >= 1 GiB copied from /usr (share, include, lib),
#                        topped up with generated files where /usr is small
#   timed NAME CMD...    runs CMD, records wall seconds and peak RSS (KiB)
#                        in $T_SECS / $T_RSS and prints a line
#   drop_caches          flushes dirty data and drops the page cache
#   ratio A B            A / B with two decimals
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(dirname "$BENCH_DIR")
OUT=${BENCH_OUT:-$BENCH_DIR/out}
CASTORE=${CASTORE:-$SRC_DIR/build/src/cli/castore}
MIN_FILES=${BENCH_MIN_FILES:-30000}
MIN_BYTES=${BENCH_MIN_BYTES:-$((1024 * 1024 * 1024))}

bench_prepare() {  # BENCH_NO_BUILD=1 with CASTORE=... uses a binary built elsewhere
        "$SRC_DIR/scripts/deps.sh" bench
        if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
                "$SRC_DIR/scripts/build.sh" "$SRC_DIR/build" release
        fi
        mkdir -p "$OUT"
}

tree_stats() {  # DIR -> "files bytes"
        find "$1" -type f -printf '%s\n' | awk '{n++; s+=$1} END {printf "%d %d\n", n, s}'
}

bench_tree() {
        local dir=$1
        if [ -f "$dir.done" ]; then return 0; fi
        rm -rf "$dir"; mkdir -p "$dir"
        local src n=0 bytes=0
        for src in /usr/share /usr/include /usr/lib/x86_64-linux-gnu /usr/lib; do
                [ -d "$src" ] || continue
                read -r n bytes < <(tree_stats "$dir")
                if [ "$n" -ge "$MIN_FILES" ] && [ "$bytes" -ge "$MIN_BYTES" ]; then break; fi
                # regular files, directories and symlinks only; no special files
                (cd / && find "${src#/}" -xdev \( -type f -o -type d -o -type l \) -print0 |
                        cpio -0 -pdm --quiet "$dir" 2>/dev/null) || true
        done
        read -r n bytes < <(tree_stats "$dir")
        local i=0
        mkdir -p "$dir/generated"
        while [ "$n" -lt "$MIN_FILES" ] || [ "$bytes" -lt "$MIN_BYTES" ]; do
                mkdir -p "$dir/generated/$((i / 1000))"
                head -c $(( (i * 7919) % 262144 + 1 )) /dev/urandom > "$dir/generated/$((i / 1000))/f$i"
                n=$((n + 1)); bytes=$((bytes + (i * 7919) % 262144 + 1)); i=$((i + 1))
        done
        chmod -R u+rX "$dir"
        touch "$dir.done"
}

drop_caches() {
        sync
        echo 3 > /proc/sys/vm/drop_caches
}

warm() {  # read a tree into the page cache
        tar cf - -C "$1" . 2>/dev/null | cat > /dev/null
}

T_SECS=0 T_RSS=0
timed() {
        local name=$1; shift
        local tf; tf=$(mktemp)
        /usr/bin/time -f '%e %M' -o "$tf" "$@" > /dev/null
        read -r T_SECS T_RSS < "$tf"; rm -f "$tf"
        printf '  %-34s %8.2f s  %8d KiB peak RSS\n' "$name" "$T_SECS" "$T_RSS" >&2
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# secs_of CMD...: runs CMD (output discarded) and prints its wall time in
# seconds with 3 decimals; a failing CMD fails the caller
secs_of() {
        local s e
        s=$(date +%s%N)
        "$@" >/dev/null
        e=$(date +%s%N)
        awk -v n=$((e - s)) 'BEGIN { printf "%.3f", n / 1e9 }'
}

# fuse_daemon_pid MNT: the castore process serving MNT (the one holding
# /dev/fuse open)
fuse_daemon_pid() {
        local p fd
        for p in $(pgrep -f -- "mount $1( |\$)"); do
                for fd in "/proc/$p/fd"/*; do
                        if [ "$(readlink "$fd" 2>/dev/null)" = /dev/fuse ]; then echo "$p"; return 0; fi
                done
        done
        return 1
}

# fuse_profile MNT CMD...: runs CMD while perf records the kernel's FUSE
# request tracepoints (fuse:fuse_request_send/end) and prints, for the
# requests to MNT's connection, one line per opcode: requests, total ms
# from send to reply, mean µs.  Mounts tracefs for the run if it is not
# mounted; says so if perf or the tracepoints are missing.
fuse_profile() {
        local mnt=$1; shift
        local dev data tracefs=''
        if ! command -v perf >/dev/null; then echo "  (FUSE requests not counted: no perf)"; return 0; fi
        if [ ! -d /sys/kernel/tracing/events ] && mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; then
                tracefs=/sys/kernel/tracing
        fi
        if [ "$(perf list 2>/dev/null | grep -c 'fuse:fuse_request_send')" = 0 ]; then
                echo "  (FUSE requests not counted: the kernel has no fuse tracepoints)"
                [ -z "$tracefs" ] || umount "$tracefs"
                return 0
        fi
        dev=$(stat -c %d "$mnt")
        data=$(mktemp)
        perf record -q -m 4096 -a -e fuse:fuse_request_send -e fuse:fuse_request_end -o "$data" -- "$@" >/dev/null 2>&1
        perf script -i "$data" -F time,event,trace 2>/dev/null | awk -v dev="$dev" '
                { for (i = 1; i <= NF; i++) { if ($i == "connection") c = $(i + 1); if ($i == "req") r = $(i + 1) }
                  if (c != dev) next
                  t = $1; sub(":", "", t) }
                /fuse_request_send/ { match($0, /\(FUSE_[A-Z_]+\)/); op = substr($0, RSTART + 6, RLENGTH - 7)
                                      start[r] = t; opof[r] = op; n[op]++ }
                /fuse_request_end/ && (r in start) { busy[opof[r]] += t - start[r]; delete start[r] }
                END { for (op in n) printf "  %-12s %9d requests %10.1f ms %8.1f us each\n", op, n[op], busy[op] * 1000, busy[op] * 1e6 / n[op] }' |
                sort -k2 -n -r
        rm -f "$data"
        [ -z "$tracefs" ] || umount "$tracefs"
}

# walk_tree W CASTORE: builds (once) W/tree, 990,100 entries (100
# directories of 100 directories of 98 small files, each file's content
# its own path, so no two entries share an inode), and W/store, a store
# of it imported as the root "tree" (imported again when removed).
# bench/inodes.sh and bench/walk1m.sh share it.
walk_tree() {
        local w=$1 castore=$2
        if [ ! -f "$w/tree.done" ]; then
                rm -rf "$w/tree" "$w/store"
                mkdir -p "$w/tree"
                python3 - "$w/tree" <<'PY'
import os, sys
top = sys.argv[1]
for a in range(100):
    for b in range(100):
        d = os.path.join(top, 'd%02d' % a, 's%02d' % b)
        os.makedirs(d)
        for c in range(98):
            p = os.path.join(d, 'f%02d' % c)
            with open(p, 'w') as f:
                f.write(p[len(top):] + '\n')
PY
                touch "$w/tree.done"
        fi
        # the store (remove it to measure an import by another binary)
        [ -d "$w/store" ] || "$castore" --store "$w/store" import "$w/tree" --name tree >/dev/null ||
                { echo "bench: import of $w/tree failed" >&2; return 1; }
}
