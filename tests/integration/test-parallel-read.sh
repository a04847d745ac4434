#!/bin/bash
# Many readers at once on one FUSE mount: concurrent sha256sum, find and
# random-offset readers over an imported tree, on a fresh mount (every
# first lookup, Directory fetch and blob check raced by several threads)
# and again after the kernel dropped its caches (forgets racing lookups),
# with passthrough (auto) and without it (every read through the daemon's
# workers); then the same store over virtiofs, many requests at once from
# a scripted front-end.  Every reader's result must equal the one computed
# from the source tree, and each daemon must exit 0 with no sanitizer
# report.  scripts/test.sh runs it against the ThreadSanitizer build too,
# where a data race stops the daemon at once (TSAN_OPTIONS=halt_on_error=1).
. "$(dirname "$0")/lib.sh"

if [ ! -c /dev/fuse ]; then
        skip "parallel readers" "/dev/fuse is missing"
        exit 0
fi
if [ "$(id -u)" != 0 ] && ! have fusermount3; then
        skip "parallel readers" "not root and no fusermount3"
        exit 0
fi

S=$T_TMP/store
SRC=$T_TMP/src
cs() { "$CASTORE" --store "$S" "$@"; }
mounted() { grep -q " $1 fuse.castore " /proc/mounts; }

# ---- the tree: 40 directories of small and medium files, some content
# repeated (shared inodes opened by several readers at once), a few files
# larger than the in-memory limits, symlinks and empty entries
python3 - "$SRC" <<'EOF'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(1234)
shared = [rnd.randbytes(rnd.randrange(1, 200000)) for _ in range(8)]
for d in range(40):
    dd = os.path.join(root, "d%02d" % d, "sub%d" % (d % 3))
    os.makedirs(dd)
    for f in range(15):
        p = os.path.join(dd if f % 2 else os.path.dirname(dd), "f%02d" % f)
        data = shared[(d + f) % 8] if f % 5 == 0 else rnd.randbytes(rnd.choice((0, 1, 100, 4096, 70000, 300000)))
        with open(p, "wb") as fh:
            fh.write(data)
        if f == 7:
            os.chmod(p, 0o755)
    os.symlink("../d%02d/f01" % ((d + 1) % 40), os.path.join(root, "d%02d" % d, "link"))
os.makedirs(os.path.join(root, "empty"))
for i, size in enumerate((3 << 20, 9 << 20, 17 << 20)):
    with open(os.path.join(root, "large%d" % i), "wb") as fh:
        fh.write(rnd.randbytes(size))
EOF
[ $? -eq 0 ] || { notok "creating the tree"; exit 1; }
check "import the tree" cs import "$SRC" --name tree

# what every reader must see, computed from the source
(cd "$SRC" && find . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum) >"$T_TMP/want.sums"
# listing DIR: type, size, symlink target and path of everything below DIR
# (sizes of directories left out: castore's are entry counts)
listing() {
        (cd "$1" && find . -printf '%y %s %l %P\n') | sed 's/^d [0-9]* /d - /' | LC_ALL=C sort
}
listing "$SRC" >"$T_TMP/want.list"

# readers MNT ROUND LABEL: starts every reader at once, waits for all,
# compares each one's result with the source's
readers() {
        local m=$1/tree out=$T_TMP/r-$2 label=$3 i pids=() names=() rc
        mkdir -p "$out"
        for i in 1 2 3; do # checksums of every file, in name order and reversed
                names+=("sha256sum of every file #$i")
                (cd "$m" && find . -type f -printf '%P\0' | LC_ALL=C sort -z $([ $i = 2 ] && echo -r) |
                        xargs -0 sha256sum | LC_ALL=C sort -k2 >"$out/sums$i") &
                pids+=($!)
        done
        for i in 1 2; do # the listing: type, size, symlink target, path
                names+=("find listing #$i")
                listing "$m" >"$out/list$i" &
                pids+=($!)
        done
        names+=("8 threads reading the large files at random offsets")
        python3 - "$SRC" "$m" >"$out/random" 2>&1 <<'EOF' &
import os, random, sys, threading
src, dst = sys.argv[1], sys.argv[2]
errors = []
def worker(seed):
    rnd = random.Random(seed)
    for _ in range(150):
        name = "large%d" % rnd.randrange(3)
        a, b = os.open(os.path.join(src, name), os.O_RDONLY), os.open(os.path.join(dst, name), os.O_RDONLY)
        size = os.fstat(a).st_size
        off, n = rnd.randrange(size), rnd.choice((1, 4096, 65536, 1 << 20))
        if os.pread(a, n, off) != os.pread(b, n, off):
            errors.append((name, off, n))
        os.close(a); os.close(b)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
sys.exit("mismatches: %r" % errors[:5] if errors else 0)
EOF
        pids+=($!)
        for i in "${!pids[@]}"; do
                rc=0
                wait "${pids[$i]}" || rc=$?
                [ $rc -eq 0 ] || echo "# ${names[$i]}: exit $rc"
        done
        for i in 1 2 3; do
                if cmp -s "$out/sums$i" <(LC_ALL=C sort -k2 "$T_TMP/want.sums"); then ok "$label: ${names[$((i - 1))]}"
                else diff <(LC_ALL=C sort -k2 "$T_TMP/want.sums") "$out/sums$i" | head -5 | sed 's/^/# /'
                        notok "$label: ${names[$((i - 1))]}"; fi
        done
        for i in 1 2; do
                if cmp -s "$out/list$i" "$T_TMP/want.list"; then ok "$label: ${names[$((i + 2))]}"
                else diff "$T_TMP/want.list" "$out/list$i" | head -5 | sed 's/^/# /'
                        notok "$label: ${names[$((i + 2))]}"; fi
        done
        if grep -q . "$out/random"; then sed 's/^/# /' "$out/random" | tail -5; notok "$label: ${names[5]}"
        else ok "$label: ${names[5]}"; fi
}

# serve MODE: one foreground daemon, two rounds of readers, a clean exit
serve() {
        local mode=$1 m=$T_TMP/m-$1 log=$T_TMP/daemon-$1.log pid rc=0
        mkdir -p "$m"
        "$CASTORE" --store "$S" mount "$m" --threads 4 --passthrough="$mode" 2>"$log" &
        pid=$!
        at_exit "kill $pid"
        if ! wait_until 120 mounted "$m"; then
                sed 's/^/# /' "$log" | tail -20
                notok "passthrough=$mode: mounted"
                return
        fi
        readers "$m" "$mode-1" "passthrough=$mode, fresh mount"
        if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
                readers "$m" "$mode-2" "passthrough=$mode, after dropping the kernel's caches"
        else
                skip "passthrough=$mode, after dropping the kernel's caches" "cannot write /proc/sys/vm/drop_caches"
        fi
        cs umount "$m" 2>>"$log" || echo "# castore umount failed"
        if wait_until 120 pid_gone "$pid"; then
                wait "$pid" || rc=$?
                expect_eq "passthrough=$mode: daemon exits 0 after umount" "$rc" 0
        else
                kill -KILL "$pid"
                notok "passthrough=$mode: daemon exits after umount"
        fi
        if grep -qE 'Sanitizer|runtime error' "$log"; then
                grep -A40 -E 'Sanitizer|runtime error' "$log" | head -80 | sed 's/^/# /'
                notok "passthrough=$mode: no sanitizer report from the daemon"
        else
                ok "passthrough=$mode: no sanitizer report from the daemon"
        fi
}

serve auto
serve off

# ---- virtiofs: many requests at once through a scripted vhost-user
# front-end (tests/integration/vm/vhost_front.py), served by the daemon's
# poller and handler threads
FRONT="python3 $SRC_DIR/tests/integration/vm/vhost_front.py"
SOCK=$T_TMP/vfs.sock
log=$T_TMP/virtiofs.log
"$CASTORE" --store "$S" -v virtiofs "$SOCK" --threads 4 >"$log" 2>&1 &
vpid=$!
at_exit "kill $vpid"
if wait_until 120 grep -q listening "$log"; then
        check "virtiofs: first reads of every file of a directory at once" $FRONT "$SOCK" files tree/d00/sub0 "$SRC/d00/sub0" 300000
        check "virtiofs: 4 rounds of 32 reads of 1 MiB at once" $FRONT "$SOCK" parallel tree/large2 "$SRC/large2" 32 1048576 4
        check "virtiofs: a new memory table with requests in flight" $FRONT "$SOCK" remap tree/large2 "$SRC/large2"
        check "virtiofs: GET_VRING_BASE with requests in flight" $FRONT "$SOCK" vring-base tree/large2 "$SRC/large2"
        kill -TERM "$vpid"
        rc=0
        wait_until 60 pid_gone "$vpid" || { kill -KILL "$vpid"; rc=timeout; }
        wait "$vpid" || [ "$rc" = timeout ] || rc=$?
        expect_eq "virtiofs: daemon exits 0 on SIGTERM" "$rc" 0
else
        sed 's/^/# /' "$log" | tail -20
        notok "virtiofs: daemon listens"
fi
if grep -qE 'Sanitizer|runtime error' "$log"; then
        grep -A40 -E 'Sanitizer|runtime error' "$log" | head -80 | sed 's/^/# /'
        notok "virtiofs: no sanitizer report from the daemon"
else
        ok "virtiofs: no sanitizer report from the daemon"
fi
exit 0
