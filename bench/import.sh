#!/bin/bash
# Import benchmark: on one tree of >= 30,000 files and >= 1 GiB, times in
# the same run, each into a cold destination on the same disk:
#   castore import            (hash on all cores, store blobs + LMDB, durable,
#                             plus the Nix store path: NAR hash of the source)
#   castore import --no-nix   the same without the Nix store path
#   cp -a                     the copy limit: read and write every byte
#   cp -a + sync              the same made durable, as castore's import is
#   b3sum of every file       the hashing limit (reads + BLAKE3 only)
#   nix-store --add           into a scratch store
#   mksquashfs (no compression)
# Source is warm in the page cache before every run.  Destinations are
# fresh directories, all removed at the end (removing them between runs
# would make file creation in the next run pay for the deletes: the
# filesystem may be mounted with online discard).  Prints a Markdown table
# with ratios to cp -a.   Usage: bench/import.sh [ROUNDS]
. "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}
bench_prepare
TREE=$OUT/tree
bench_tree "$TREE"
read -r NFILES NBYTES < <(tree_stats "$TREE")
echo "tree: $NFILES files, $((NBYTES / 1048576)) MiB, $(nproc) CPUs" >&2
DESTS=$OUT/dest
rm -rf "$DESTS"; mkdir -p "$DESTS"; sync
trap 'rm -rf "$DESTS"' EXIT
export NIX_CONFIG=$'build-users-group =\nsandbox = false'

declare -A secs rss
n_run=0
run() {  # NAME CMD...  ($DEST is a fresh directory)
        local name=$1; shift
        n_run=$((n_run + 1))
        export DEST=$DESTS/$n_run; mkdir -p "$DEST"
        warm "$TREE"; sync
        timed "$name" "$@"
        secs[$name]="${secs[$name]:-} $T_SECS"
        if [ "${rss[$name]:-0}" -lt "$T_RSS" ]; then rss[$name]=$T_RSS; fi
}

for round in $(seq 1 "$ROUNDS"); do
        echo "round $round" >&2
        run "castore import" sh -c '"$1" --store "$DEST/store" import --no-progress "$2" --name tree' sh "$CASTORE" "$TREE"
        run "castore import --no-nix" sh -c '"$1" --store "$DEST/store" import --no-progress --no-nix "$2" --name tree' sh "$CASTORE" "$TREE"
        run "cp -a" sh -c 'cp -a "$1" "$DEST/copy"' sh "$TREE"
        run "cp -a + sync" sh -c 'cp -a "$1" "$DEST/copy" && sync' sh "$TREE"
        run "b3sum" sh -c 'cd "$1" && find . -type f -print0 | xargs -0 -n 2000 b3sum --no-names > /dev/null' sh "$TREE"
        if [ "$round" -le 2 ]; then
                run "nix-store --add" sh -c 'nix-store --store "$DEST/nix" --add "$1"' sh "$TREE"
                run "mksquashfs (no compression)" sh -c 'mksquashfs "$1" "$DEST/tree.sqfs" -noI -noD -noF -noX -no-progress -quiet' sh "$TREE"
        fi
done

med() { median ${secs[$1]}; }
base=$(med "cp -a")
{
echo "| tool | median s | vs cp -a | vs castore | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for name in "castore import" "castore import --no-nix" "cp -a" "cp -a + sync" "b3sum" "nix-store --add" "mksquashfs (no compression)"; do
        m=$(med "$name")
        printf '| %s | %.2f | %s | %s | %d |\n' "$name" "$m" "$(ratio "$m" "$base")" "$(ratio "$m" "$(med "castore import")")" $((rss[$name] / 1024))
done
echo
echo "Tree: $NFILES files, $((NBYTES / 1048576)) MiB; $(nproc) CPUs; $ROUNDS rounds (nix-store and mksquashfs: 2)."
} | tee "$OUT/import.md"
