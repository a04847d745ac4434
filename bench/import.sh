#!/bin/bash
# Import benchmark: on one tree of >= 30,000 files and >= 1 GiB, times in
# the same run, each into a cold destination on the same disk:
#   castore import            (hash on all cores, store blobs + LMDB, durable)
#   cp -a                     the copy limit: read and write every byte
#   cp -a + sync              the same made durable, as castore's import is
#   b3sum of every file       the hashing limit (reads + BLAKE3 only)
#   nix-store --add           into a scratch store
#   mksquashfs (no compression)
# Source is warm in the page cache before every run.  Prints a Markdown
# table with ratios to cp -a.   Usage: bench/import.sh [ROUNDS]
. "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}
bench_prepare
TREE=$OUT/tree
bench_tree "$TREE"
read -r NFILES NBYTES < <(tree_stats "$TREE")
echo "tree: $NFILES files, $((NBYTES / 1048576)) MiB, $(nproc) CPUs" >&2
DEST=$OUT/dest
export NIX_CONFIG=$'build-users-group =\nsandbox = false'

declare -A secs rss
run() {  # NAME CMD...  (destination is removed before and after)
        local name=$1; shift
        rm -rf "$DEST"; mkdir -p "$DEST"; sync
        warm "$TREE"
        timed "$name" "$@"
        secs[$name]="${secs[$name]:-} $T_SECS"
        if [ "${rss[$name]:-0}" -lt "$T_RSS" ]; then rss[$name]=$T_RSS; fi
        rm -rf "$DEST"
}

for round in $(seq 1 "$ROUNDS"); do
        echo "round $round" >&2
        run "castore import" "$CASTORE" --store "$DEST/store" import --no-progress "$TREE" --name tree
        run "cp -a" cp -a "$TREE" "$DEST/copy"
        run "cp -a + sync" sh -c 'cp -a "$1" "$2/copy" && sync' sh "$TREE" "$DEST"
        run "b3sum" sh -c 'cd "$1" && find . -type f -print0 | xargs -0 -n 2000 b3sum --no-names > /dev/null' sh "$TREE"
        if [ "$round" -le 2 ]; then
                run "nix-store --add" nix-store --store "$DEST/nix" --add "$TREE"
                run "mksquashfs (no compression)" mksquashfs "$TREE" "$DEST/tree.sqfs" -noI -noD -noF -noX -no-progress -quiet
        fi
done

med() { median ${secs[$1]}; }
base=$(med "cp -a")
{
echo "| tool | median s | vs cp -a | vs castore | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for name in "castore import" "cp -a" "cp -a + sync" "b3sum" "nix-store --add" "mksquashfs (no compression)"; do
        m=$(med "$name")
        printf '| %s | %.2f | %s | %s | %d |\n' "$name" "$m" "$(ratio "$m" "$base")" "$(ratio "$m" "$(med "castore import")")" $((rss[$name] / 1024))
done
echo
echo "Tree: $NFILES files, $((NBYTES / 1048576)) MiB; $(nproc) CPUs; $ROUNDS rounds (nix-store and mksquashfs: 2)."
} | tee "$OUT/import.md"
