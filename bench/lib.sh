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
