#!/bin/bash
# virtiofs benchmark: the same tree served to one guest (Debian's stock
# kernel, busybox, QEMU/TCG) through two vhost-user-fs devices with the
# same queue size:
#   tag castore     castore virtiofs  (the tree imported into a store;
#                   entries and attributes valid for a year, page cache
#                   kept across opens: the content is immutable)
#   tag virtiofsd   Debian's virtiofsd (QEMU 7.2's C daemon) sharing the
#                   plain directory with -o cache=always (long entry and
#                   attribute timeouts, page cache kept: the closest to
#                   castore's settings), default thread pool
# Each round measures both back to back (alternating which goes first, so
# host load hits both alike), after dropping the guest's caches:
#   walk: find DIR -size +0 | wc -l   (lookup + stat of every entry)
#   read: tar cf - -C DIR . | wc -c   (readdir + open + read of everything)
# Times come from the guest's /proc/uptime (10 ms); the host's page cache
# is warm for both.  Prints a Markdown table with the medians and the
# ratio virtiofsd / castore (> 1: castore is faster).
# Usage: bench/virtiofs.sh [ROUNDS]
#   BENCH_VFS_TREE=DIR   tree to serve (default: a copy of /usr/include)
#   VM_SMP, VM_MEM       guest vCPUs and memory (1, 512M)
#   BENCH_NO_BUILD=1 CASTORE=BINARY   use that binary, skip the build
. "$(dirname "$0")/lib.sh"
set +e
ROUNDS=${1:-3}
VIRTIOFSD=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
if [ -n "${BENCH_NO_BUILD:-}" ]; then mkdir -p "$OUT"; else bench_prepare; fi
T_TMP=$OUT/virtiofs
rm -rf "$T_TMP"; mkdir -p "$T_TMP"
BUILD_DIR=$SRC_DIR/build
. "$SRC_DIR/tests/integration/vm/vm.sh"
vm_prepare || { echo "cannot boot guests: $VM_SKIP" >&2; exit 1; }
[ -x "$VIRTIOFSD" ] || { echo "no $VIRTIOFSD (qemu-system-common)" >&2; exit 1; }

TREE=$OUT/vfs-tree
if [ -n "${BENCH_VFS_TREE:-}" ]; then TREE=$BENCH_VFS_TREE
elif [ ! -f "$TREE.done" ]; then
        rm -rf "$TREE"; mkdir -p "$TREE"
        (cd /usr && find include \( -type f -o -type d -o -type l \) -print0 | cpio -0 -pdm --quiet "$TREE")
        chmod -R u+rX "$TREE"
        touch "$TREE.done"
fi
read -r NFILES NBYTES < <(tree_stats "$TREE")
NENTRIES=$(find "$TREE" | wc -l)
echo "tree: $NENTRIES entries, $NFILES files, $((NBYTES / 1048576)) MiB; guest: ${VM_SMP} vCPU, $VM_MEM, queue size $VM_QUEUE_SIZE" >&2

STORE=$T_TMP/store
"$CASTORE" --store "$STORE" import --no-progress "$TREE" --name bench > /dev/null 2>&1 ||
        "$CASTORE" --store "$STORE" import "$TREE" --name bench > /dev/null || { echo "import failed" >&2; exit 1; }

cat > "$T_TMP/guest.sh" <<'GUEST'
mkdir -p /c /v
mount -t virtiofs castore /c || { echo "mount castore failed"; exit 1; }
mount -t virtiofs virtiofsd /v || { echo "mount virtiofsd failed"; exit 1; }
up() { cut -d' ' -f1 /proc/uptime; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
walk() { drop; s=$(up); n=$(find $2 -size +0 | wc -l); e=$(up); echo "$1 walk $s $e $n"; }
readall() { drop; s=$(up); b=$(tar cf - -C $2 . | wc -c); e=$(up); echo "$1 read $s $e $b"; }
for round in $(seq 1 $ROUNDS); do
        if [ $((round % 2)) = 1 ]; then
                walk castore /c/bench; walk virtiofsd /v; readall castore /c/bench; readall virtiofsd /v
        else
                walk virtiofsd /v; walk castore /c/bench; readall virtiofsd /v; readall castore /c/bench
        fi
done
GUEST
sed -i "1i ROUNDS=$ROUNDS" "$T_TMP/guest.sh"

warm "$TREE"; warm "$STORE"
CSOCK=$T_TMP/castore.sock VSOCK=$T_TMP/virtiofsd.sock
rm -f "$CSOCK" "$VSOCK"
"$CASTORE" --store "$STORE" virtiofs "$CSOCK" > "$T_TMP/castore.log" 2>&1 &
CPID=$!
"$VIRTIOFSD" --socket-path="$VSOCK" -o source="$TREE" -o cache=always > "$T_TMP/virtiofsd.log" 2>&1 &
VPID=$!
for i in $(seq 100); do [ -S "$CSOCK" ] && [ -S "$VSOCK" ] && break; sleep 0.1; done
start=$SECONDS
VM_TIMEOUT=$((600 + 300 * ROUNDS)) vm_run bench none "$T_TMP/guest.sh" \
        -chardev "socket,id=c0,path=$CSOCK" \
        -device "vhost-user-fs-pci,chardev=c0,tag=castore,queue-size=$VM_QUEUE_SIZE" \
        -chardev "socket,id=c1,path=$VSOCK" \
        -device "vhost-user-fs-pci,chardev=c1,tag=virtiofsd,queue-size=$VM_QUEUE_SIZE" ||
        echo "guest exited $?" >&2
echo "guest run took $((SECONDS - start)) s" >&2
kill "$CPID" "$VPID" 2>/dev/null
wait "$CPID" "$VPID" 2>/dev/null

declare -A res
for name in castore virtiofsd; do
        for op in walk read; do
                secs=() counts=()
                while read -r _ _ s e c; do
                        secs+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')")
                        counts+=("$c")
                done < <(grep "^$name $op " "$VM_DIR/bench/out.log")
                [ ${#secs[@]} -gt 0 ] || { echo "$name: no $op results" >&2; vm_show bench >&2; exit 1; }
                res[$name.$op]=$(median "${secs[@]}")
                res[$name.$op.all]="${secs[*]}"
                res[$name.$op.count]=${counts[0]}
                echo "  $name $op: ${secs[*]} s (result ${counts[0]})" >&2
        done
done

same="yes"
[ "${res[castore.walk.count]}" = "${res[virtiofsd.walk.count]}" ] || same="NO (walk counts differ)"
[ "${res[castore.read.count]}" = "${res[virtiofsd.read.count]}" ] || same="NO (tar sizes differ)"
cat <<EOF
| guest operation ($NENTRIES entries, $((NBYTES / 1048576)) MiB) | castore virtiofs | virtiofsd cache=always | virtiofsd / castore |
|---|---|---|---|
| metadata walk: find -size +0 | ${res[castore.walk]} s | ${res[virtiofsd.walk]} s | $(ratio "${res[virtiofsd.walk]}" "${res[castore.walk]}") |
| full read: tar cf - . \| wc -c | ${res[castore.read]} s | ${res[virtiofsd.read]} s | $(ratio "${res[virtiofsd.read]}" "${res[castore.read]}") |

Medians of $ROUNDS rounds, one guest with both devices (all rounds: castore walk ${res[castore.walk.all]}, read ${res[castore.read.all]}; virtiofsd walk ${res[virtiofsd.walk.all]}, read ${res[virtiofsd.read.all]}).  Same results from both: $same.
EOF
