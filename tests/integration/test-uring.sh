#!/bin/bash
# castore mount over FUSE io_uring: with the fuse module's enable_uring
# parameter set to Y (restored afterwards), --io-uring=on serves through
# ring entries -- the daemon holds io_uring descriptors, answers requests
# through the rings, and a tree (small files, files larger than one READ,
# symlinks) reads back equal to its source for sequential and parallel
# readers, before and after the kernel drops its caches, with fewer and
# more threads than CPUs -- then unmounts cleanly (castore umount, SIGTERM)
# and exits 0.  With enable_uring=N, --io-uring=auto falls back to reading
# /dev/fuse and --io-uring=on refuses to mount.
. "$(dirname "$0")/lib.sh"

PARAM=/sys/module/fuse/parameters/enable_uring
if [ ! -c /dev/fuse ]; then
        skip "io_uring mount" "/dev/fuse is missing"
        exit 0
fi
if [ "$(id -u)" != 0 ]; then
        skip "io_uring mount" "setting $PARAM needs root"
        exit 0
fi
if [ ! -e "$PARAM" ]; then
        skip "io_uring mount" "this kernel has no FUSE over io_uring (CONFIG_FUSE_IO_URING)"
        exit 0
fi
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" != 0 ]; then
        skip "io_uring mount" "io_uring is disabled here (kernel.io_uring_disabled)"
        exit 0
fi
SAVED=$(cat "$PARAM")
at_exit "echo '$SAVED' >'$PARAM'"

S=$T_TMP/store
SRC=$T_TMP/src
cs() { "$CASTORE" --store "$S" "$@"; }
mounted() { grep -q " $1 fuse.castore " /proc/mounts; }

python3 - "$SRC" <<'EOF'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(42)
for d in range(12):
    dd = os.path.join(root, "d%02d" % d, "sub")
    os.makedirs(dd)
    for f in range(20):
        size = rnd.choice((0, 1, 100, 4095, 4096, 65536, 200000))
        with open(os.path.join(dd if f % 2 else os.path.dirname(dd), "f%02d" % f), "wb") as fh:
            fh.write(rnd.randbytes(size))
    os.symlink("sub/f01", os.path.join(root, "d%02d" % d, "link"))
for i, size in enumerate((1 << 20, (3 << 20) + 17, 17 << 20)):
    with open(os.path.join(root, "large%d" % i), "wb") as fh:
        fh.write(rnd.randbytes(size))
EOF
[ $? -eq 0 ] || { notok "creating the tree"; exit 1; }
check "import the tree" cs import "$SRC" --name tree
(cd "$SRC" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum) >"$T_TMP/want.sums"

# serve NAME ARGS...: mounts on $T_TMP/NAME in the background, logging to
# $T_TMP/NAME.log, and waits until it serves; PID is the daemon's
serve() {
        local m=$T_TMP/$1
        shift
        mkdir -p "$m"
        "$CASTORE" --store "$S" mount "$m" -v "$@" >"$m.log" 2>&1 &
        PID=$!
        wait_until 30 mounted "$m" && wait_until 10 grep -q '^castore: Serving ' "$m.log"
}
# the daemon's io_uring descriptors
uring_fds() { find "/proc/$1/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null | wc -l; }
possible_cpus() {
        python3 -c 'import sys
n = 0
for r in open("/sys/devices/system/cpu/possible").read().strip().split(","):
    a, _, b = r.partition("-")
    n += int(b or a) - int(a) + 1
print(n)'
}
# parallel MNT: three checksum readers and a listing at once, each
# compared with the source
parallel() {
        local m=$1 i pids=() rc=0
        for i in 1 2 3; do
                (cd "$m" && find . -type f -printf '%P\0' | LC_ALL=C sort -z $([ $i = 2 ] && echo -r) |
                        xargs -0 sha256sum | LC_ALL=C sort -k2 >"$T_TMP/sums$i") &
                pids+=($!)
        done
        diff -r "$SRC" "$m" >"$T_TMP/diff.out" 2>&1 &
        pids+=($!)
        for i in "${pids[@]}"; do wait "$i" || rc=1; done
        for i in 1 2 3; do cmp -s <(LC_ALL=C sort -k2 "$T_TMP/want.sums") "$T_TMP/sums$i" || rc=1; done
        return $rc
}

# ---- enable_uring=Y, --io-uring=on
echo Y >"$PARAM"
M=$T_TMP/on
if serve on --io-uring=on; then
        ok "mount --io-uring=on"
        check "the daemon says it serves over io_uring" wait_until 10 grep -q 'threads over io_uring' "$M.log"
        n=$(uring_fds "$PID")
        if [ "$n" -ge 1 ] && [ "$n" -le "$(nproc)" ]; then ok "the daemon holds $n io_uring rings"; else
                notok "the daemon holds io_uring rings (found $n)"; fi
        check "diff -r against the source" diff -r "$SRC" "$M/tree"
        check "parallel readers (cold)" parallel "$M/tree"
        sync
        echo 3 >/proc/sys/vm/drop_caches
        check "parallel readers after drop_caches (FORGETs through the device)" parallel "$M/tree"
        check "17 MiB file at random offsets" python3 - "$SRC/large2" "$M/tree/large2" <<'EOF'
import os, random, sys
a, b = open(sys.argv[1], "rb"), open(sys.argv[2], "rb")
size = os.path.getsize(sys.argv[1])
rnd = random.Random(7)
for _ in range(300):
    off, n = rnd.randrange(size), rnd.choice((1, 4096, 131072, 1 << 20, 3 << 20))
    a.seek(off); b.seek(off)
    if a.read(n) != b.read(n):
        sys.exit("mismatch at %d+%d" % (off, n))
EOF
        cs umount "$M"
        if wait "$PID"; then ok "castore umount: the daemon exits 0"; else notok "castore umount: the daemon exits 0"; fi
        check "mount gone" sh -c "! grep -q ' $M ' /proc/mounts"
        reqs=$(sed -n 's/.*: \([0-9]*\) requests answered through the rings.*/\1/p' "$M.log")
        if [ "${reqs:-0}" -gt 100 ]; then ok "requests answered through the rings: $reqs"; else
                sed 's/^/# /' "$M.log"; notok "requests answered through the rings (${reqs:-none})"; fi
else
        sed 's/^/# /' "$M.log"
        notok "mount --io-uring=on"
fi

# thread counts other than one per CPU: one thread serving every queue,
# and more threads than queues (two rings on one queue)
for t in 1 $(( $(possible_cpus) * 2 + 1 )); do
        if serve "threads$t" --io-uring=on --threads "$t"; then
                check "--threads $t: diff -r and parallel readers" parallel "$T_TMP/threads$t/tree"
                expect_eq "--threads $t: io_uring rings" "$(uring_fds "$PID")" "$t"
                kill -TERM "$PID"
                if wait "$PID"; then ok "--threads $t: SIGTERM: the daemon exits 0"; else notok "--threads $t: SIGTERM: exit 0"; fi
                check "--threads $t: mount gone" sh -c "! grep -q ' $T_TMP/threads$t ' /proc/mounts"
        else
                sed 's/^/# /' "$T_TMP/threads$t.log"
                notok "mount --io-uring=on --threads $t"
        fi
done

# a busy mount: SIGTERM detaches it lazily while a reader holds a file
# open; the ring threads stop all the same and the daemon exits 0
if serve busy --io-uring=on; then
        sleep 60 <"$T_TMP/busy/tree/large0" &
        HOLDER=$!
        at_exit "kill $HOLDER"
        wait_until 10 sh -c "ls -l /proc/$HOLDER/fd/0 2>/dev/null | grep -q large0"
        kill -TERM "$PID"
        if wait_until 20 pid_gone "$PID" && wait "$PID"; then ok "busy mount, SIGTERM: the daemon exits 0"; else
                sed 's/^/# /' "$T_TMP/busy.log"; notok "busy mount, SIGTERM: the daemon exits 0"; fi
        check "busy mount: detached" sh -c "! grep -q ' $T_TMP/busy ' /proc/mounts"
        kill "$HOLDER" 2>/dev/null
else
        sed 's/^/# /' "$T_TMP/busy.log"
        notok "mount --io-uring=on (busy)"
fi

# ---- enable_uring=N: auto falls back, on refuses
echo N >"$PARAM"
M=$T_TMP/auto
if serve auto -o io_uring=auto; then
        expect_eq "enable_uring=N, auto: no io_uring ring" "$(uring_fds "$PID")" 0
        expect_eq "enable_uring=N, auto: the fallback is logged" \
                "$(grep -c 'does not offer FUSE over io_uring; reading /dev/fuse' "$M.log")" 1
        check "enable_uring=N, auto: diff -r against the source" diff -r "$SRC" "$M/tree"
        cs umount "$M"
        if wait "$PID"; then ok "enable_uring=N: the daemon exits 0"; else notok "enable_uring=N: the daemon exits 0"; fi
else
        sed 's/^/# /' "$M.log"
        notok "enable_uring=N: mount --io-uring=auto"
fi
M=$T_TMP/refused
mkdir -p "$M"
out=$(timeout 30 "$CASTORE" --store "$S" mount "$M" --io-uring=on 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "does not offer FUSE over io_uring" <<<"$out"; then
        ok "enable_uring=N, --io-uring=on: refused ($out)"
else
        notok "enable_uring=N, --io-uring=on: refused (exit $rc: $out)"
fi
check "enable_uring=N, --io-uring=on: nothing left mounted" sh -c "! grep -q ' $M ' /proc/mounts"
out=$("$CASTORE" --store "$S" mount "$M" --io-uring=maybe 2>&1)
rc=$?
if [ $rc -eq 2 ] || { [ $rc -ne 0 ] && grep -q "io-uring takes auto, on or off" <<<"$out"; }; then
        ok "--io-uring=maybe: usage error"
else
        notok "--io-uring=maybe: usage error (exit $rc: $out)"
fi
