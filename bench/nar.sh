#!/bin/bash
# NAR benchmark: on the benchmark tree (>= 1 GiB, >= 30,000 files, see
# lib.sh), imported into castore, times in the same run with both the tree
# and the store warm in the page cache before every run:
#   nix-store --dump TREE        Nix reading the tree from disk
#   castore nar dump STOREPATH   rendering from castore (every blob verified)
#   nix-hash --type sha256 TREE  Nix's NAR hash of the tree
#   castore nar hash STOREPATH   rendering + SHA-256 without output
# Output goes to /dev/null for all of them.  Before timing, the two dumps
# are checked to be byte-identical.  Prints a Markdown table with NAR
# throughput and ratios to nix-store --dump.
# Usage: bench/nar.sh [ROUNDS]   (CASTORE=path/to/castore to skip the build)
caller_castore=${CASTORE:-}
. "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}
if [ -n "$caller_castore" ]; then mkdir -p "$OUT"; else bench_prepare; fi
for tool in nix-store nix-hash; do
        command -v "$tool" >/dev/null || { echo "nar.sh: $tool is not installed (scripts/deps.sh bench)" >&2; exit 1; }
done
export NIX_CONFIG=$'build-users-group =\nsandbox = false\nsubstituters ='

TREE=$OUT/tree
bench_tree "$TREE"
read -r NFILES NBYTES < <(tree_stats "$TREE")
echo "tree: $NFILES files, $((NBYTES / 1048576)) MiB, $(nproc) CPUs" >&2

# ---- ingest: the tree as Nix archives it, into a fresh store ----
STORE=$OUT/nar-store
rm -rf "$STORE"
warm "$TREE"
timed "castore nar import (from a pipe)" \
        sh -c 'nix-store --dump "$1" | "$2" --store "$3" nar import - --name tree' sh "$TREE" "$CASTORE" "$STORE"
P=$(nix-store --dump "$TREE" | "$CASTORE" --store "$STORE" nar import - --name tree)
echo "store path: $P" >&2
NARBYTES=$("$CASTORE" --store "$STORE" nar hash --size "$P" | sed -n 2p)

# ---- correctness first: the same bytes ----
a=$(nix-store --dump "$TREE" | sha256sum | cut -d' ' -f1)
b=$("$CASTORE" --store "$STORE" nar dump "$P" | sha256sum | cut -d' ' -f1)
if [ "$a" != "$b" ]; then
        echo "nar.sh: castore nar dump differs from nix-store --dump ($b vs $a)" >&2
        exit 1
fi
echo "dumps identical: sha256 $a, $NARBYTES bytes" >&2

declare -A secs rss
run() {  # NAME CMD...
        local name=$1; shift
        warm "$TREE"
        warm "$STORE"
        timed "$name" "$@"
        secs[$name]="${secs[$name]:-} $T_SECS"
        if [ "${rss[$name]:-0}" -lt "$T_RSS" ]; then rss[$name]=$T_RSS; fi
}

for round in $(seq 1 "$ROUNDS"); do
        echo "round $round" >&2
        run "nix-store --dump" nix-store --dump "$TREE"
        run "castore nar dump" "$CASTORE" --store "$STORE" nar dump "$P"
        run "nix-hash --type sha256" nix-hash --type sha256 "$TREE"
        run "castore nar hash" "$CASTORE" --store "$STORE" nar hash "$P"
done

med() { median ${secs[$1]}; }
base=$(med "nix-store --dump")
{
echo "| tool | median s | NAR MiB/s | vs nix-store --dump | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for name in "nix-store --dump" "castore nar dump" "nix-hash --type sha256" "castore nar hash"; do
        m=$(med "$name")
        printf '| %s | %.2f | %s | %s | %d |\n' "$name" "$m" \
                "$(awk -v b="$NARBYTES" -v s="$m" 'BEGIN { if (s > 0) printf "%.0f", b / 1048576 / s; else print "n/a" }')" \
                "$(ratio "$m" "$base")" $((rss[$name] / 1024))
done
echo
echo "Tree: $NFILES files, $((NBYTES / 1048576)) MiB of file contents, NAR $((NARBYTES / 1048576)) MiB;" \
     "$(nproc) CPUs; $ROUNDS rounds; tree and store warm in the page cache; output to /dev/null."
} | tee "$OUT/nar.md"
