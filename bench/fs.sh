#!/bin/bash
# Filesystem benchmark: one tree (a copy of /usr/share and /usr/include,
# >= 30,000 files and >= 1 GiB, plus one 1 GiB file of random bytes) read
# natively, through castore mount (the default, verifying every read, and
# --passthrough=on, which lets the kernel read blob files unverified), squashfuse
# (zstd image) and the kernel's erofs (uncompressed image on a loop
# device).  Measures: cold and warm metadata walks (find -printf of size,
# mode, path), full reads (tar cf - . | wc -c) cold and warm, sequential
# dd of the 1 GiB file cold and warm, 4 KiB random reads, 4 parallel
# readers, and castore's daemon RSS after a full walk.  "cold" means after
# echo 3 > /proc/sys/vm/drop_caches.
#
# FS_ROUNDS rounds (default 3), the targets in turn within each; the
# report gives the medians.
#
# Usage (root): bench/fs.sh [WORKDIR]   (default /var/tmp/castore-bench)
# Needs: castore built (CASTORE, default ./build/src/cli/castore),
# squashfs-tools, squashfuse, erofs-utils (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh # median, drop_caches, secs_of
CASTORE=${CASTORE:-$PWD/build/src/cli/castore}
W=${1:-/var/tmp/castore-bench}
ROUNDS=${FS_ROUNDS:-3}
[ "$(id -u)" = 0 ] || { echo "bench/fs.sh: needs root (drop_caches, mount)" >&2; exit 1; }
for t in mksquashfs squashfuse mkfs.erofs python3; do
        command -v $t >/dev/null || { echo "bench/fs.sh: $t missing (scripts/deps.sh bench)" >&2; exit 1; }
done
[ -x "$CASTORE" ] || { echo "bench/fs.sh: no castore binary at $CASTORE" >&2; exit 1; }

mkdir -p "$W"
TREE=$W/tree STORE=$W/store
cleanup() {
        for m in "$W"/mnt-*; do
                [ -d "$m" ] || continue
                if grep -q " $m " /proc/mounts; then
                        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
                fi
        done
}
trap cleanup EXIT

# --- the tree and its images (kept between runs) -------------------------
if [ ! -f "$TREE/.complete" ]; then
        rm -rf "$TREE"
        mkdir -p "$TREE"
        cp -a /usr/share "$TREE/share"
        cp -a /usr/include "$TREE/include"
        head -c $((1 << 30)) /dev/urandom >"$TREE/big.bin"
        touch "$TREE/.complete"
fi
files=$(find "$TREE" -type f | wc -l)
bytes=$(du -sb "$TREE" | cut -f1)
echo "tree: $files files, $((bytes >> 20)) MiB"
if [ ! -d "$STORE" ]; then
        "$CASTORE" --store "$STORE" import "$TREE" --name tree --skip-special >/dev/null
fi
[ -f "$W/tree.sqfs" ] || mksquashfs "$TREE" "$W/tree.sqfs" -comp zstd -quiet -no-progress >/dev/null
[ -f "$W/tree.erofs" ] || mkfs.erofs --quiet "$W/tree.erofs" "$TREE" >/dev/null

# --- mounts ------------------------------------------------------------------
declare -A ROOT
ROOT[native]=$TREE
mkdir -p "$W/mnt-pt" "$W/mnt-nopt" "$W/mnt-sqfs" "$W/mnt-erofs"
"$CASTORE" --store "$STORE" mount "$W/mnt-pt" --daemon --passthrough=on
"$CASTORE" --store "$STORE" mount "$W/mnt-nopt" --daemon # default: every read verified
ROOT[castore-pt]=$W/mnt-pt/tree
ROOT[castore-nopt]=$W/mnt-nopt/tree
squashfuse "$W/tree.sqfs" "$W/mnt-sqfs"
ROOT[squashfuse]=$W/mnt-sqfs
mount -t erofs -o loop,ro "$W/tree.erofs" "$W/mnt-erofs"
ROOT[erofs]=$W/mnt-erofs
TARGETS="native castore-pt castore-nopt squashfuse erofs"

drop() { drop_caches; }
secs() { secs_of "$@"; }
walk() { (cd "$1" && find . -printf '%s %m %p\n' | wc -l); }
tarall() { (cd "$1" && tar cf - . | wc -c); }
ddbig() { dd if="$1/big.bin" of=/dev/null bs=1M 2>/dev/null; }
randread() {
        python3 - "$1/big.bin" <<'EOF'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
rnd = random.Random(1)
for _ in range(20000):
    os.pread(fd, 4096, rnd.randrange(0, size // 4096) * 4096)
EOF
}
parallel4() {
        # four readers over disjoint quarters of the file list
        (cd "$1" && find . -type f -name '*' ! -name big.bin -print0 | sort -z >"$W/files.lst")
        local i
        for i in 0 1 2 3; do
                (cd "$1" && python3 - "$W/files.lst" "$i" <<'EOF'
import os, sys
names = open(sys.argv[1], 'rb').read().split(b'\0')[:-1]
part = int(sys.argv[2])
n = 0
for name in names[part::4]:
    with open(name, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            n += len(b)
EOF
                ) &
        done
        wait
}

# one round: every measure of every target, targets in turn (so that a
# slow phase of the shared disk falls on all of them); R holds the times
# of all rounds, space-separated, and the report their medians
declare -A R
measure() {  # TARGET KEY CMD...
        local t=$1 k=$2
        shift 2
        R[$t,$k]="${R[$t,$k]:-} $(secs "$@")"
}
for round in $(seq 1 "$ROUNDS"); do
        for t in $TARGETS; do
                d=${ROOT[$t]}
                echo "--- round $round: $t ($d)"
                drop
                measure "$t" walk_cold walk "$d"
                measure "$t" walk_warm walk "$d"
                if [[ $t == castore-* ]]; then
                        pid=$(pgrep -f -- "mount $W/mnt-${t#castore-} " | head -1)
                        R[$t,rss]=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
                fi
                drop
                measure "$t" tar_cold tarall "$d"
                measure "$t" tar_warm tarall "$d"
                drop
                measure "$t" dd_cold ddbig "$d"
                measure "$t" dd_warm ddbig "$d"
                measure "$t" rand4k randread "$d"
                measure "$t" par4 parallel4 "$d"
                for k in walk_cold walk_warm tar_cold tar_warm dd_cold dd_warm rand4k par4; do
                        printf '  %-10s %8ss\n' "$k" "${R[$t,$k]##* }"
                done
                [ -n "${R[$t,rss]:-}" ] && echo "  daemon RSS after a full walk and reads: ${R[$t,rss]} kB"
        done
done
for t in $TARGETS; do
        for k in walk_cold walk_warm tar_cold tar_warm dd_cold dd_warm rand4k par4; do
                echo "  $t $k:${R[$t,$k]}"
                R[$t,$k]=$(median ${R[$t,$k]})
        done
done

# --- report: times and ratios to native (Markdown) --------------------------
echo
echo "Medians of $ROUNDS rounds."
echo
echo "| measure | native | castore --passthrough=on (unverified) | castore default (verified) | squashfuse (zstd) | erofs |"
echo "|---|---|---|---|---|---|"
for k in walk_cold walk_warm tar_cold tar_warm dd_cold dd_warm rand4k par4; do
        line="| $k | ${R[native,$k]} s"
        for t in castore-pt castore-nopt squashfuse erofs; do
                line="$line | ${R[$t,$k]} s ($(python3 -c "print('%.2f' % (${R[$t,$k]} / max(${R[native,$k]}, 0.001)))")×)"
        done
        echo "$line |"
done
echo
echo "castore daemon RSS: --passthrough=on ${R[castore-pt,rss]} kB, default ${R[castore-nopt,rss]} kB"
