#!/bin/bash
# The 1M-entry walk, timed: bench/inodes.sh's tree of 990,100 entries
# (built once by walk_tree in bench/lib.sh, in the same WORKDIR) walked
# with `find . -printf '%s %m %p\n'` natively, through castore mount
# (default options) and through the kernel's erofs (an uncompressed image
# on a loop device), cold (after drop_caches) and warm, ROUNDS rounds
# (default 3) with the targets' order rotated each round.  After every
# drop the script waits until castore's daemon has processed the
# kernel's FORGETs, so no walk competes with them.  Reports every round,
# medians with ratios to native, the daemon's RSS and CPU time per walk,
# and the FUSE requests of one cold and one warm walk (kernel tracepoints,
# through perf, where available).
#
# Usage (root): bench/walk1m.sh [WORKDIR] [ROUNDS]   (default /var/tmp/castore-inodes, 3)
# Needs: castore built (CASTORE, default ./build/src/cli/castore), erofs-utils.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
W=${1:-/var/tmp/castore-inodes}
ROUNDS=${2:-3}
[ "$(id -u)" = 0 ] || { echo "bench/walk1m.sh: needs root (drop_caches, mount)" >&2; exit 1; }
command -v mkfs.erofs >/dev/null || { echo "bench/walk1m.sh: mkfs.erofs missing (erofs-utils)" >&2; exit 1; }
[ -x "$CASTORE" ] || { echo "bench/walk1m.sh: no castore binary at $CASTORE" >&2; exit 1; }
mkdir -p "$W"
W=$(cd "$W" && pwd)
MC=$W/mnt-walk ME=$W/mnt-erofs
cleanup() {
        local m
        for m in "$MC" "$ME"; do
                if grep -q " $m " /proc/mounts; then umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; fi
        done
}
trap cleanup EXIT

echo "load average at the start: $(cut -d" " -f1-3 /proc/loadavg)"
walk_tree "$W" "$CASTORE"
if [ ! -f "$W/tree.erofs" ]; then
        mkfs.erofs --quiet "$W/tree.erofs.tmp" "$W/tree" >/dev/null
        mv "$W/tree.erofs.tmp" "$W/tree.erofs"
fi

mkdir -p "$MC" "$ME"
"$CASTORE" --store "$W/store" mount "$MC" --daemon
mount -t erofs -o loop,ro "$W/tree.erofs" "$ME"
DAEMON=$(fuse_daemon_pid "$MC") || { echo "bench/walk1m.sh: no daemon serving $MC" >&2; exit 1; }
declare -A ROOT=([native]=$W/tree [castore]=$MC/tree [erofs]=$ME)
TARGETS="native castore erofs"

walk() { (cd "$1" && find . -printf '%s %m %p\n' >/dev/null); }
held() { echo $(( $(stat -f -c %c "$MC") - 1 )); } # the daemon's inodes, less the root
# waits until the daemon's inode count stops falling (FORGETs come in batches)
settle() {
        local prev=-1 now
        for _ in $(seq 120); do
                now=$(held)
                [ "$now" = "$prev" ] && return 0
                prev=$now
                sleep 1
        done
}
# the daemon's CPU seconds (user + system, all threads)
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$DAEMON/stat"; }
mem() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$DAEMON/status"; }

n0=''
for t in $TARGETS; do
        n=$(cd "${ROOT[$t]}" && find . | wc -l)
        echo "$t: $n entries (${ROOT[$t]})"
        [ -z "$n0" ] || [ "$n" = "$n0" ] || { echo "bench/walk1m.sh: $t lists $n entries, native $n0" >&2; exit 1; }
        n0=$n
done

declare -A R=()
set -- $TARGETS
order=("$@")
for ((r = 1; r <= ROUNDS; r++)); do
        echo "--- round $r"
        for ((k = 0; k < ${#order[@]}; k++)); do
                t=${order[(k + r - 1) % ${#order[@]}]}
                drop_caches
                settle
                c0=$(cpu)
                cold=$(secs_of walk "${ROOT[$t]}")
                c1=$(cpu)
                warm=$(secs_of walk "${ROOT[$t]}")
                c2=$(cpu)
                R[$t,cold]+="$cold " R[$t,warm]+="$warm "
                line="  $t: cold $cold s, warm $warm s"
                if [ "$t" = castore ]; then
                        R[rss]+="$(mem VmRSS)/$(mem RssAnon) "
                        line+="; daemon CPU cold $(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }') s,"
                        line+=" warm $(awk -v a="$c1" -v b="$c2" 'BEGIN { printf "%.2f", b - a }') s;"
                        line+=" inodes held $(held); VmRSS $(mem VmRSS) kB, RssAnon $(mem RssAnon) kB"
                fi
                echo "$line"
        done
done

echo
echo "FUSE requests of one castore walk (kernel tracepoints; time from send to reply):"
drop_caches
settle
echo " cold:"
fuse_profile "$MC" bash -c "cd '$MC/tree' && find . -printf '%s %m %p\n' >/dev/null" || true
echo " warm:"
fuse_profile "$MC" bash -c "cd '$MC/tree' && find . -printf '%s %m %p\n' >/dev/null" || true

echo
echo "All rounds (s): native cold ${R[native,cold]}, warm ${R[native,warm]};" \
        "castore cold ${R[castore,cold]}, warm ${R[castore,warm]};" \
        "erofs cold ${R[erofs,cold]}, warm ${R[erofs,warm]}"
echo "castore daemon VmRSS/RssAnon after each round's walks (kB): ${R[rss]}"
echo
echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)"
echo
echo "| measure ($n0 entries) | native | castore (ratio) | erofs (ratio) |"
echo "|---|---|---|---|"
for c in cold warm; do
        nat=$(median ${R[native,$c]})
        line="| walk_$c | $nat s"
        for t in castore erofs; do
                v=$(median ${R[$t,$c]})
                line+=" | $v s ($(ratio "$v" "$nat")×)"
        done
        echo "$line |"
done
