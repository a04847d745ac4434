#!/bin/bash
# Pack files in a local store, end to end: an imported tree's small files
# land in packs; a mount reads every file back identical, cold too (tar
# after drop_caches), and sees a tree imported after it started; gc after
# removing a root leaves only live blobs and the other tree intact; an
# import killed with -9 leaves a store that verifies and a re-run
# completes; verify --repair removes a damaged packed blob.
. "$(dirname "$0")/lib.sh"

STORE=$T_TMP/store
export CASTORE_STORE=$STORE
C() { "$CASTORE" "$@"; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
packs() { find "$STORE/blobs/packs" -name '*.idx' 2>/dev/null | wc -l; }
loose() { find "$STORE/blobs" -path "$STORE/blobs/packs" -prune -o -type f ! -name '*.ob' -print 2>/dev/null | wc -l; }

# A and B share half of their files; small, empty and large files; BIG has
# more small files than a flush (4096), so it writes several packs.
python3 - "$T_TMP" <<'EOF'
import os, sys
t = sys.argv[1]
for which in (0, 1):
    root = "%s/A%d" % (t, which)
    os.makedirs(root + "/sub/deeper")
    for i in range(80):
        shared = i % 2 == 0
        line = b"%d shared\n" % i if shared else b"%d only in tree %d\n" % (i, which)
        open("%s/f%d" % (root, i), "wb").write(line * (1 + (i * 37) % 1500))
        open("%s/sub/deeper/g%d" % (root, i), "wb").write(b"%d sub\n" % i * (1 + i * 3))
    open(root + "/empty", "wb").close()
    open(root + "/large", "wb").write(os.urandom(300000))
    open(root + "/over64k", "wb").write(b"x" * 65536 + (b"%d" % which))
    open(root + "/at64k", "wb").write(b"y" * 65536)
    open(root + "/groups", "wb").write(os.urandom(40000))
    open(root + "/over1m", "wb").write(b"z" * 1048576 + (b"%d" % which))
    open(root + "/at1m", "wb").write(b"w" * 1048576)
big = t + "/BIG"
for d in range(40):
    os.makedirs("%s/d%d" % (big, d))
    for i in range(150):
        open("%s/d%d/f%d" % (big, d, i), "wb").write(b"big %d %d\n" % (d, i) * (5 + i))
EOF
A=$T_TMP/A0 B=$T_TMP/A1 BIG=$T_TMP/BIG

check "import A" C import "$A" --name a --no-nix
expect_eq "A's small files are in one pack" "$(packs)" 1
# empty and over-1-MiB contents (over1m: 1 MiB + 1 byte) stay loose;
# at1m, large (300,000 bytes), over64k and groups are packed, with their
# outboards (no .ob file)
want=$(find "$A" -type f \( -size +1048576c -o -empty \) -exec sha256sum {} + | cut -c1-64 | sort -u | wc -l)
expect_eq "A's empty and over-1-MiB files are loose, the others packed" "$(loose)" "$want"
expect_eq "an outboard file beside the one loose blob over 16 KiB only" \
        "$(find "$STORE/blobs" -name '*.ob' | wc -l)" 1
check "import B" C import "$B" --name b --no-nix
check "import BIG" C import "$BIG" --name big --no-nix
[ "$(packs)" -ge 3 ] && ok "BIG wrote several packs" || notok "BIG wrote several packs ($(packs))"
expect_eq "no temporaries left" "$(find "$STORE/tmp" -type f ! -name '*.lock' | wc -l)" 0
check "verify" C verify
check "import --no-pack" C --store "$T_TMP/loose" import "$A" --name a --no-nix --no-pack
expect_eq "--no-pack writes no pack" "$(find "$T_TMP/loose/blobs" -name '*.pack' | wc -l)" 0
out=$(C info --json 2>/dev/null)
expect_eq "info counts packed blobs" "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"]["count"])' <<<"$out" 2>/dev/null || echo "?")" \
        "$(C --store "$T_TMP/info-ref" import "$A" --name a --no-nix >/dev/null 2>&1; C --store "$T_TMP/info-ref" import "$B" --name b --no-nix --no-pack >/dev/null 2>&1; C --store "$T_TMP/info-ref" import "$BIG" --name big --no-nix --no-pack >/dev/null 2>&1; C --store "$T_TMP/info-ref" info --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"]["count"])' 2>/dev/null || echo "??")"

# ---- through a mount ----
fuse_check
M=$T_TMP/m
if [ $FUSE = 0 ]; then
        skip "mount checks" "$WHY_NO_FUSE"
else
        mkdir -p "$M"
        if ! C mount "$M" --daemon 2>"$T_TMP/mount.err"; then
                cat "$T_TMP/mount.err" | sed 's/^/# /'
                notok "mount --daemon"
        else
                check "diff -r A through the mount" diff -r "$A" "$M/a"
                check "diff -r BIG through the mount" diff -r "$BIG" "$M/big"
                if echo 3 2>/dev/null >/proc/sys/vm/drop_caches; then
                        sync
                        echo 3 >/proc/sys/vm/drop_caches
                        n=$( (cd "$M/big" && tar cf - .) | tar tf - | grep -c '/f' )
                        expect_eq "cold tar of BIG lists every file" "$n" 6000
                        echo 3 >/proc/sys/vm/drop_caches
                        check "cold cmp of every file of B" bash -c "cd '$B' && find . -type f -print0 | xargs -0 -I{} cmp {} '$M/b/{}'"
                else
                        skip "cold reads" "drop_caches not allowed"
                fi
                # a tree imported after the mount started: packs it did not know
                mkdir -p "$T_TMP/late"
                for i in $(seq 1 50); do echo "late $i" >"$T_TMP/late/f$i"; done
                check "import a tree while mounted" C import "$T_TMP/late" --name late --no-nix
                check "the mount reads the new packs" diff -r "$T_TMP/late" "$M/late"
                # gc removes packs the mount has open: it keeps reading them
                check "rm late" C rm late
                check "gc while mounted" C gc
                check "the mount still reads A after gc rewrote packs" diff -r "$A" "$M/a"
                unmount "$M"
        fi
fi

# ---- gc ----
check "rm a" C rm a
out=$(C gc --json 2>"$T_TMP/err")
blobs=$(field blobs <<<"$out")
[ "${blobs:-0}" -gt 0 ] && ok "gc removed A's own blobs ($blobs)" || notok "gc removed A's own blobs"
[ "$(field packsRewritten <<<"$out")" -gt 0 ] && ok "gc rewrote packs" || notok "gc rewrote packs"
out=$(C gc --json --dry-run 2>"$T_TMP/err")
expect_eq "a second gc finds nothing" "$(field blobs <<<"$out")/$(field packsRewritten <<<"$out")" "0/0"
live=$(field liveBlobs <<<"$out")
listed=$(C info --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["blobs"]["count"])' 2>/dev/null)
expect_eq "only live blobs are left" "$listed" "$live"
check "verify after gc" C verify
rm -rf "$T_TMP/out-b" "$T_TMP/out-big"
check "export B after gc" C export b "$T_TMP/out-b"
check "B intact after gc" diff -r "$B" "$T_TMP/out-b"
check "export BIG after gc" C export big "$T_TMP/out-big"
check "BIG intact after gc" diff -r "$BIG" "$T_TMP/out-big"

# ---- kill -9 during an import ----
K=$T_TMP/killed
python3 - "$K" <<'EOF'
import os, sys
k = sys.argv[1]
for d in range(100):
    os.makedirs("%s/d%d" % (k, d))
    for i in range(200):
        open("%s/d%d/f%d" % (k, d, i), "wb").write(b"killed %d %d\n" % (d, i) * (3 + i % 50))
EOF
# killed at a point watched in the store (not after a delay): a pack
# being written (a temporary besides the lock file), then once a pack was
# published; each time the store verifies and a re-run completes
pack_tmp() { [ "$(find "$STORE/tmp" -type f ! -name '*.lock' | wc -l)" -ge 1 ]; }
n=0
for point in writing published; do
        n=$((n + 1))
        before=$(packs)
        "$CASTORE" import "$K" --name "killed$n" --no-nix >/dev/null 2>&1 &
        pid=$!
        while kill -0 $pid 2>/dev/null; do
                if [ $point = writing ]; then pack_tmp && break; else [ "$(packs)" -gt "$before" ] && break; fi
                sleep 0.002
        done
        if kill -9 $pid 2>/dev/null; then
                ok "import killed ($point)"
        else
                skip "kill during import ($point)" "the import finished first"
        fi
        wait $pid 2>/dev/null
        check "verify after the kill ($point)" C verify
        check "re-run of the import ($point)" C import "$K" --name "killed$n" --no-nix
        check "verify after the re-run ($point)" C verify
        rm -rf "$T_TMP/out-k"
        check "export of the re-run ($point)" C export "killed$n" "$T_TMP/out-k"
        check "the re-run tree is intact ($point)" diff -r "$K" "$T_TMP/out-k"
        C rm "killed$n" >/dev/null 2>&1
        C gc >/dev/null 2>&1
done
C import "$K" --name killed --no-nix >/dev/null 2>&1
check "gc after the kill" C gc
expect_eq "no temporaries after gc" "$(find "$STORE/tmp" -type f ! -name '*.lock' | wc -l)" 0

# ---- verify --repair of a damaged packed blob ----
pack=$(find "$STORE/blobs/packs" -name '*.pack' | head -1)
chmod u+w "$pack"
printf 'X' | dd of="$pack" bs=1 seek=5 conv=notrunc status=none
if C verify >"$T_TMP/v.out" 2>&1; then notok "verify finds the damaged packed blob"; else
        ok "verify finds the damaged packed blob"
fi
# eio_count DIR...: files below the DIRs whose read fails with EIO (other errors: -1)
eio_count() {
        python3 - "$@" <<'EOF'
import errno, os, sys
n = 0
for root, dirs, files in (w for d in sys.argv[1:] for w in os.walk(d)):
    for f in files:
        try:
            open(os.path.join(root, f), 'rb').read()
        except OSError as e:
            if e.errno != errno.EIO:
                print(-1); sys.exit()
            n += 1
print(n)
EOF
}
if [ $FUSE = 1 ]; then
        mkdir -p "$M"
        if C mount "$M" --daemon 2>/dev/null; then
                n=$(eio_count "$M/b" "$M/big" "$M/killed")
                expect_eq "the damaged packed blob reads as EIO through a mount, nothing else" "$n" 1
                expect_eq "... and again" "$(eio_count "$M/b" "$M/big" "$M/killed")" 1
                unmount "$M"
        else
                notok "mount of the damaged store"
        fi
fi
C verify --repair >/dev/null 2>&1
if C verify >/dev/null 2>&1; then notok "after --repair, verify reports the missing blob"; else
        ok "after --repair, verify reports the missing blob"
fi
for t in b big killed; do
        src=$B
        [ $t = big ] && src=$BIG
        [ $t = killed ] && src=$K
        C import "$src" --name $t --no-nix --force >/dev/null 2>&1
done
check "verify after re-imports" C verify
rm -rf "$T_TMP/out-b"
check "B intact after the repair" bash -c "'$CASTORE' export b '$T_TMP/out-b' && diff -r '$B' '$T_TMP/out-b'"

