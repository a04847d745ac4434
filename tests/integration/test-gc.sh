#!/bin/bash
# castore gc from the command line: a store holding only live trees frees
# nothing; the orphans of a killed import (blobs, temporaries) are
# reclaimed, and --dry-run counts exactly what gc then removes; a remote
# store is refused; gc in a loop (another process) while imports of
# overlapping content run, after which the store verifies and every tree
# exports identical to its source.
. "$(dirname "$0")/lib.sh"

STORE=$T_TMP/store
export CASTORE_STORE=$STORE
C() { "$CASTORE" "$@"; }
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
# loose blob files (packs are merged by gc: test-pack.sh counts those)
blob_files() { find "$STORE/blobs" -path "$STORE/blobs/packs" -prune -o -type f ! -name '*.ob' -print 2>/dev/null | wc -l; }

# A and B share half of their files and all of sub/; BIG has more files
# than a deferred flush (4096), so an import killed late leaves blobs
# renamed into place that nothing refers to, besides temporaries (loose
# blobs, --no-pack, so that they can be watched; the other imports pack).
python3 - "$T_TMP" <<'EOF'
import os, sys
t = sys.argv[1]
for which in (0, 1):
    root = "%s/A%d" % (t, which)
    os.makedirs(root + "/sub")
    for i in range(60):
        shared = i % 2 == 0
        line = b"%d shared\n" % i if shared else b"%d only in tree %d\n" % (i, which)
        open("%s/f%d" % (root, i), "wb").write(line * (1 + (i * 37) % 3000))
        open("%s/sub/f%d" % (root, i), "wb").write(b"%d sub\n" % i * (1 + i * 11))
big = t + "/BIG"
for d in range(50):
    os.makedirs("%s/d%d" % (big, d))
    for i in range(110):
        open("%s/d%d/f%d" % (big, d, i), "wb").write(b"big %d %d\n" % (d, i) * 20)
EOF
A=$T_TMP/A0 B=$T_TMP/A1 BIG=$T_TMP/BIG

# ---- nothing to collect ----
check "import A" C import "$A" --name a
check "import B" C import "$B" --name b
live=$(blob_files)
out=$(C gc --json 2>"$T_TMP/err")
expect_eq "gc of a store of live trees frees no blob" "$(field blobs <<<"$out")" 0
expect_eq "gc of a store of live trees frees no directory" "$(field directories <<<"$out")" 0
expect_eq "gc keeps every blob file" "$(blob_files)" "$live"

# ---- the orphans of a killed import ----
# kill_import NAME: imports BIG, killed once blobs were renamed into
# place (watched in the store, not after a delay).  0 if it was killed.
kill_import() {
        local pid rc=0 before
        before=$(blob_files)
        "$CASTORE" import "$BIG" --name "$1" --no-pack >/dev/null 2>&1 &
        pid=$!
        until [ "$(blob_files)" -ge $((before + 200)) ]; do
                pid_gone $pid && break
                sleep 0.005
        done
        kill -9 $pid 2>/dev/null
        wait $pid 2>/dev/null || rc=$?
        [ $rc -eq 137 ]
}
if kill_import big; then
        n_before=$(blob_files)
        dry=$(C gc --dry-run --json)
        expect_eq "--dry-run removes nothing" "$(blob_files)" "$n_before"
        real=$(C gc --json)
        for f in blobs blobBytes directories directoryBytes temporaries temporaryBytes; do
                expect_eq "--dry-run counts what gc removes: $f" "$(field $f <<<"$dry")" "$(field $f <<<"$real")"
        done
        [ "$(field blobs <<<"$real")" -ge 200 ] && ok "gc frees the killed import's blobs" ||
                notok "gc frees the killed import's blobs: $real"
        expect_eq "blob files after gc" "$(blob_files)" "$live"
        expect_eq "gc removed exactly the blob files it counted" "$n_before" "$((live + $(field blobs <<<"$real")))"
        expect_eq "no temporaries left" "$(find "$STORE/tmp" -type f | wc -l)" 0
        check "verify after gc" C verify
else
        skip "orphans of a killed import" "the import finished before it was killed"
fi

# ---- a remote store ----
rc=0
C gc --store "grpc+unix://$T_TMP/no-daemon.sock" >"$T_TMP/out" 2>"$T_TMP/err" || rc=$?
expect_eq "gc of a remote store exits 1" "$rc" 1
grep -q "local store" "$T_TMP/err" && ok "gc of a remote store says why" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "gc of a remote store says why"; }

# ---- gc in a loop while imports of overlapping content run ----
: >"$T_TMP/gc-failed"
(
        while [ ! -e "$T_TMP/stop" ]; do
                C gc >/dev/null 2>"$T_TMP/gc-err" || cat "$T_TMP/gc-err" >>"$T_TMP/gc-failed"
        done
) &
gc_pid=$!
T_CLEANUP+=("touch $T_TMP/stop; wait $gc_pid")
for round in 1 2 3; do
        # orphans first: the next import deduplicates against blobs a
        # collection wants to remove
        kill_import "killed$round" || true
        check "import BIG beside gc ($round)" C import "$BIG" --name "big$round"
        check "import A beside gc ($round)" C import "$A" --name "a$round"
        check "import B beside gc ($round)" C import "$B" --name "b$round"
done
touch "$T_TMP/stop"
wait $gc_pid
expect_eq "every gc beside the imports succeeded" "$(cat "$T_TMP/gc-failed")" ""
check "gc after the imports" C gc
check "verify after gc beside imports" C verify
for name in big3 a3 b1 a b; do
        case $name in big*) src=$BIG ;; a*) src=$A ;; b*) src=$B ;; esac
        rm -rf "$T_TMP/out"
        check "export $name" C export "$name" "$T_TMP/out"
        check "$name exports identical to its source" diff -r "$src" "$T_TMP/out"
done
