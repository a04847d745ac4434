#!/bin/bash
# Daemon memory per inode: a generated tree of 990,100 entries (100
# directories of 100 directories of 98 small files, each file's
# content its own path, so no two entries share an inode) is imported once
# and walked through castore mount.  Reports the daemon's RSS before the
# walk, after it (the kernel then holds an inode for every entry:
# readdirplus instantiates them), and after the kernel forgot them, with
# bytes per inode = (after - before) / inodes held.  The walk runs in its
# own memory cgroup; emptying that cgroup makes the kernel reclaim the
# walk's dentries and inodes (FORGET to the daemon) without touching the
# rest of the machine's caches; that cgroup's kernel memory after the walk
# gives the kernel's own cost per inode (dentry, FUSE inode).  Memory
# only: bench/walk1m.sh times walks of the same tree.
#
# Usage (root): bench/inodes.sh [WORKDIR]   (default /var/tmp/castore-inodes)
# CASTORE: the binary (default ./build/src/cli/castore); several binaries
# can be compared in one run: CASTORE="old/castore new/castore".
set -euo pipefail
cd "$(dirname "$0")/.."
CASTORE=${CASTORE:-$PWD/build/src/cli/castore}
. bench/lib.sh
W=${1:-/var/tmp/castore-inodes}
[ "$(id -u)" = 0 ] || { echo "bench/inodes.sh: needs root (mount, memory cgroup)" >&2; exit 1; }
for c in $CASTORE; do
        [ -x "$c" ] || { echo "bench/inodes.sh: no castore binary at $c" >&2; exit 1; }
done
MEMCG=/sys/fs/cgroup/memory
[ -w "$MEMCG" ] || { echo "bench/inodes.sh: needs the cgroup v1 memory controller at $MEMCG" >&2; exit 1; }
MNT=$W/mnt
CG=$MEMCG/castore-inodes-walk
cleanup() {
        if grep -q " $MNT " /proc/mounts; then umount "$MNT" 2>/dev/null || umount -l "$MNT" || true; fi
        if [ -d "$CG" ]; then rmdir "$CG" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- the tree and its store (built once, bench/lib.sh) ---------------------------
walk_tree "$W" "${CASTORE%% *}"

# --- one run per binary ------------------------------------------------------
# The daemon's VmRSS counts the pages of the store's metadata database
# (LMDB, mapped) that the walk read: page cache, shared and reclaimable
# (a daemon may unmap them after a forget burst).  RssAnon is the daemon's
# own memory (heap, inode table, stacks).
mem() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
held() { echo $(( $(stat -f -c %c "$MNT") - 1 )); } # statfs: the daemon's inodes, less the root
# waits until the daemon's inode count stops falling (FORGETs arrive in batches)
settle() {
        local prev=-1 now
        for _ in $(seq 60); do
                now=$(held)
                [ "$now" = "$prev" ] && break
                prev=$now
                sleep 1
        done
}
per_inode() { echo $(( ($2 - $1) * 1024 / ($3 > 0 ? $3 : 1) )); }
entries=$(find "$W/tree" -mindepth 1 | wc -l)
echo "tree: $entries entries"
mkdir -p "$MNT"
echo "| binary | inodes held | VmRSS before / after walk / after forget (kB) | bytes per inode | RssAnon before / after walk / after forget (kB) | bytes per inode | RssAnon after forget vs before | inodes left | kernel memory per inode |"
echo "|---|---|---|---|---|---|---|---|---|"
# run BINARY: one mount, walk and forget; the table row in $ROW.  Fails
# (1) if the kernel did not hold nearly every entry after the walk
# (something else on the machine dropped caches meanwhile).
run() {
        local c=$1 pid='' p fd n left kmem
        "$c" --store "$W/store" mount "$MNT" --daemon 2>/dev/null
        # the daemon: the process serving the mount with /dev/fuse open
        for p in $(pgrep -f -- "mount $MNT"); do
                for fd in "/proc/$p/fd"/*; do
                        if [ "$(readlink "$fd")" = /dev/fuse ]; then pid=$p; break 2; fi
                done
        done
        [ -n "$pid" ] || { echo "bench/inodes.sh: no daemon serving $MNT" >&2; exit 1; }
        ls "$MNT/tree" >/dev/null
        declare -A M=()
        for k in VmRSS RssAnon; do M[$k,0]=$(mem "$pid" $k); done
        mkdir -p "$CG"
        # the walk (find with size, mode, path, as bench/fs.sh) in its own memory cgroup
        sh -c 'echo $$ > "$1/cgroup.procs" && exec find "$2/tree" -printf "%s %m %p\n"' sh "$CG" "$MNT" | wc -l >/dev/null
        n=$(held)
        for k in VmRSS RssAnon; do M[$k,1]=$(mem "$pid" $k); done
        kmem=$(cat "$CG/memory.kmem.usage_in_bytes")
        # reclaims what the walk charged: its dentries and inodes, so the kernel forgets
        echo 0 >"$CG/memory.force_empty"
        settle
        left=$(held)
        for k in VmRSS RssAnon; do M[$k,2]=$(mem "$pid" $k); done
        rmdir "$CG"
        umount "$MNT"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
        if [ "$n" -lt $((entries * 95 / 100)) ]; then echo "bench/inodes.sh: the kernel held $n of $entries entries after the walk" >&2; return 1; fi
        ROW="| $c | $n | ${M[VmRSS,0]} / ${M[VmRSS,1]} / ${M[VmRSS,2]} | $(per_inode "${M[VmRSS,0]}" "${M[VmRSS,1]}" "$n")"
        ROW+=" | ${M[RssAnon,0]} / ${M[RssAnon,1]} / ${M[RssAnon,2]} | $(per_inode "${M[RssAnon,0]}" "${M[RssAnon,1]}" "$n")"
        ROW+=" | $(( (M[RssAnon,2] - M[RssAnon,0]) * 100 / M[RssAnon,0] )) % | $left | $((kmem / n)) |"
}
for c in $CASTORE; do
        for try in 1 2 3; do
                if run "$c"; then echo "$ROW"; break; fi
                echo "bench/inodes.sh: the kernel dropped entries during the walk (another drop_caches?); again" >&2
                [ "$try" = 3 ] && exit 1
        done
done
