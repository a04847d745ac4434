#!/bin/bash
# Binary cache benchmark: castore against real Nix (Debian's nix-bin) and a
# static file server, in the same run, on the benchmark tree (bench/lib.sh)
# added to a Nix chroot store as one store path.  Measures:
#  - copy from a cache on disk: `castore copy --from file://` of the tree's
#    cache as Nix wrote it with zstd and with xz (level 1), against `nix copy --from
#    file://` of the same cache into a fresh chroot store (rounds, median);
#  - serving: `castore cache serve` of a store holding the path, against
#    `python3 -m http.server` serving the cache Nix wrote uncompressed
#    (what a static server of a Nix cache does):
#      narinfo latency, 2000 GETs on one keep-alive connection (p50, p99);
#      NAR throughput, the whole NAR fetched with curl (MB/s), with the
#      page cache dropped (cold) and right after (warm);
#      real Nix substituting the path from each (nix-store -r into a fresh
#      chroot store, signatures checked).
# Usage (root): bench/cache.sh [ROUNDS] [WORKDIR]   (3, /var/tmp/castore-bench-cache)
# The tree is built once in $BENCH_TREE (default /var/tmp/castore-bench-cache-tree).
. "$(dirname "$0")/lib.sh"
ROUNDS=${1:-3}
W=${2:-/var/tmp/castore-bench-cache}
TREE=${BENCH_TREE:-/var/tmp/castore-bench-cache-tree}
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "bench/cache.sh: needs root (Nix chroot stores, drop_caches)" >&2; exit 1; }
bench_prepare
for t in nix-store nix curl; do
        command -v $t >/dev/null || { echo "bench/cache.sh: $t missing (scripts/deps.sh bench)" >&2; exit 1; }
done
bench_tree "$TREE"

rm -rf "$W"; mkdir -p "$W"
SERVERS=()
cleanup() { local p; for p in ${SERVERS[@]+"${SERVERS[@]}"}; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# real Nix offline on chroot stores, as the tests run it
export HOME=$W/home XDG_CACHE_HOME=$W/xdg NIX_REMOTE=
export NIX_CONFIG='build-users-group =
sandbox = false
substituters =
experimental-features = nix-command'
mkdir -p "$HOME"
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
up() { local i; for i in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; return 1; }

echo "bench/cache.sh: preparing (nix-store --add of the tree, caches written by nix copy)" >&2
P=$(nix-store --store "$W/nix" --add "$TREE" 2>/dev/null)
H=$(basename "$P"); H=${H%%-*}
nix-store --generate-binary-cache-key bench-1 "$W/k.sec" "$W/k.pub" 2>/dev/null
KEY=$(cat "$W/k.pub")
for c in zstd xz none; do
        # xz at level 1 (Nix's default, 6, takes many minutes for a GiB on
        # two CPUs): the reading side, which is what is measured, decodes
        # any level at about the same speed
        extra=""; [ "$c" = xz ] && extra="&compression-level=1&parallel-compression=true"
        nix copy --store "$W/nix" --to "file://$W/cache-$c?compression=$c&secret-key=$W/k.sec$extra" "$P" 2>/dev/null
done
read -r nfiles nbytes < <(tree_stats "$TREE")
NARSIZE=$(sed -n 's/^NarSize: //p' "$W/cache-none/$H.narinfo")
echo "tree: $nfiles files, $((nbytes / 1048576)) MiB; NAR $((NARSIZE / 1048576)) MiB" >&2
for c in zstd xz; do
        echo "  $c cache: $(( $(du -sb "$W/cache-$c/nar" | cut -f1) / 1048576 )) MiB" >&2
done

# ---- copy --from file:// ----
declare -A T
for c in zstd xz; do
        cs=() ns=()
        for r in $(seq "$ROUNDS"); do
                rm -rf "$W/st" "$W/nix2" "$XDG_CACHE_HOME"
                drop_caches
                timed "castore copy --from ($c) #$r" "$CASTORE" --store "$W/st" copy --from "file://$W/cache-$c" \
                        --trusted-public-keys "$KEY" --no-progress "$P"
                cs+=("$T_SECS")
                drop_caches
                timed "nix copy --from ($c) #$r" nix copy --store "$W/nix2" --from "file://$W/cache-$c" \
                        --option trusted-public-keys "$KEY" "$P"
                ns+=("$T_SECS")
        done
        T[castore,$c]=$(median "${cs[@]}") T[nix,$c]=$(median "${ns[@]}")
done

# ---- serving: castore cache serve against a static server ----
CPORT=$(free_port) SPORT=$(free_port)
"$CASTORE" --store "$W/st" -q cache serve --listen "127.0.0.1:$CPORT" --sign-key "$W/k.sec" &
SERVERS+=($!)
(cd "$W/cache-none" && exec "$PY" -m http.server --bind 127.0.0.1 "$SPORT" >/dev/null 2>&1) &
SERVERS+=($!)
up "http://127.0.0.1:$CPORT/nix-cache-info" && up "http://127.0.0.1:$SPORT/nix-cache-info" ||
        { echo "bench/cache.sh: a server did not start" >&2; exit 1; }

# narinfo latency: one keep-alive connection, 200 warm-up GETs, 2000 timed
lat() {
        "$PY" - "$1" "/$H.narinfo" <<'EOF'
import http.client, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port)
def get():
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and body.startswith(b"StorePath:"), r.status
for _ in range(200):
    get()
t = []
for _ in range(2000):
    s = time.perf_counter(); get(); t.append(time.perf_counter() - s)
t.sort()
print("%.3f %.3f" % (t[len(t) // 2] * 1000, t[int(len(t) * 0.99)] * 1000))
EOF
}
# python's http.server closes after each response unless HTTP/1.1 is on:
# the static server's figure includes a new connection per request
read -r T[castore,p50] T[castore,p99] < <(lat "$CPORT")
read -r T[static,p50] T[static,p99] < <(lat "$SPORT")

nar_url() { curl -sf "http://127.0.0.1:$1/$H.narinfo" | sed -n 's/^URL: //p'; }
thr() {  # PORT -> MB/s of the whole NAR
        local url; url=$(nar_url "$1")
        curl -sf -o /dev/null -w '%{size_download} %{time_total}\n' "http://127.0.0.1:$1/$url" |
                awk '{ printf "%.0f", $1 / $2 / 1e6 }'
}
cm=() sm=() cw=() sw=()
for r in $(seq "$ROUNDS"); do
        drop_caches; cm+=("$(thr "$CPORT")"); cw+=("$(thr "$CPORT")")
        drop_caches; sm+=("$(thr "$SPORT")"); sw+=("$(thr "$SPORT")")
done
T[castore,nar]=$(median "${cm[@]}") T[static,nar]=$(median "${sm[@]}")
T[castore,narw]=$(median "${cw[@]}") T[static,narw]=$(median "${sw[@]}")

subst() {  # PORT: real Nix substitutes P into a fresh chroot store
        rm -rf "$W/nix3" "$XDG_CACHE_HOME"
        drop_caches
        timed "nix-store -r from :$1" nix-store --store "$W/nix3" -r "$P" \
                --option substituters "http://127.0.0.1:$1" --option trusted-public-keys "$KEY"
}
cs=() ss=()
for r in $(seq "$ROUNDS"); do
        subst "$CPORT"; cs+=("$T_SECS")
        subst "$SPORT"; ss+=("$T_SECS")
done
T[castore,subst]=$(median "${cs[@]}") T[static,subst]=$(median "${ss[@]}")

cat <<EOF

| measure | castore | peer | castore / peer |
|---|---:|---:|---:|
| copy --from file:// zstd (s) | ${T[castore,zstd]} | ${T[nix,zstd]} (nix copy) | $(ratio "${T[castore,zstd]}" "${T[nix,zstd]}") |
| copy --from file:// xz (s) | ${T[castore,xz]} | ${T[nix,xz]} (nix copy) | $(ratio "${T[castore,xz]}" "${T[nix,xz]}") |
| narinfo p50 (ms) | ${T[castore,p50]} | ${T[static,p50]} (http.server) | $(ratio "${T[castore,p50]}" "${T[static,p50]}") |
| narinfo p99 (ms) | ${T[castore,p99]} | ${T[static,p99]} (http.server) | $(ratio "${T[castore,p99]}" "${T[static,p99]}") |
| NAR, uncompressed, cold (MB/s) | ${T[castore,nar]} | ${T[static,nar]} (http.server) | $(ratio "${T[castore,nar]}" "${T[static,nar]}") |
| NAR, uncompressed, warm (MB/s) | ${T[castore,narw]} | ${T[static,narw]} (http.server) | $(ratio "${T[castore,narw]}" "${T[static,narw]}") |
| nix-store -r through it (s) | ${T[castore,subst]} | ${T[static,subst]} (http.server) | $(ratio "${T[castore,subst]}" "${T[static,subst]}") |

rounds: $ROUNDS (medians); tree: $nfiles files, $((nbytes / 1048576)) MiB, NAR $((NARSIZE / 1048576)) MiB
EOF
