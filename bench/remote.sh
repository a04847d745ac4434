#!/bin/bash
# Remote store benchmark: castore's client against "castore daemon" on
# loopback, against the same work done on a local store.  Measures:
#  - blob Put: import of one 1 GiB random file (the fs benchmark's big.bin)
#    over a unix socket and over TCP, against a local import, each into a
#    fresh store (3 rounds, median; with and without the Nix store path);
#  - blob Read: cat of that file without a cache over both transports
#    against a local cat (hyperfine, warm page cache, median);
#  - Stat latency over the unix socket: 2000 BlobService/Stat calls from a
#    Python grpcio client (stubs generated here from proto/, as
#    tests/integration/test-grpc-peer.sh does) after 200 warm-up calls, p50
#    and p99; Python's own per-call overhead is included; then 5000 calls
#    from castore's own client (bench/stat-latency.c);
#  - the fs benchmark's tree mounted through the daemon with an empty
#    --cache (cold) and with the cache filled, against a local mount of the
#    same store: tar of the tree and dd of the 1 GiB file, cold (after
#    sync; echo 3 > /proc/sys/vm/drop_caches, which empties the daemon's
#    and the cache's page cache as well); also without a cache.
#
# Usage (root): bench/remote.sh [WORKDIR]   (default /var/tmp/castore-bench-remote)
# The tree is bench/fs.sh's: FS_BENCH_DIR/tree (default
# /var/tmp/castore-bench/tree; run bench/fs.sh first to build it).
# Needs: castore built (CASTORE, default ./build/src/cli/castore), hyperfine,
# /usr/bin/python3 with python3-grpcio, protoc and grpc_python_plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC_DIR=$PWD
CASTORE=${CASTORE:-$PWD/build/src/cli/castore}
STAT_LATENCY=${STAT_LATENCY:-$(dirname "$CASTORE")/../../bench/stat-latency}
W=${1:-/var/tmp/castore-bench-remote}
TREE=${FS_BENCH_DIR:-/var/tmp/castore-bench}/tree
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "bench/remote.sh: needs root (drop_caches, mount)" >&2; exit 1; }
for t in hyperfine protoc /usr/bin/grpc_python_plugin; do
        command -v $t >/dev/null || { echo "bench/remote.sh: $t missing" >&2; exit 1; }
done
"$PY" -c 'import grpc' || { echo "bench/remote.sh: $PY lacks python3-grpcio" >&2; exit 1; }
[ -x "$CASTORE" ] || { echo "bench/remote.sh: no castore binary at $CASTORE" >&2; exit 1; }
[ -f "$TREE/.complete" ] || { echo "bench/remote.sh: no tree at $TREE: run bench/fs.sh first" >&2; exit 1; }
BIG=$TREE/big.bin

rm -rf "$W"
mkdir -p "$W"
SOCK=$W/d.sock
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
UNIX=grpc+unix://$SOCK
TCP=grpc+http://127.0.0.1:$PORT
DPID=
cleanup() {
        local m
        for m in "$W"/mnt-*; do
                grep -q " $m " /proc/mounts && { umount "$m" 2>/dev/null || umount -l "$m"; }
        done
        [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
        return 0
}
trap cleanup EXIT

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# secs CMD...: wall time of CMD in seconds (3 decimals)
secs() {
        local s e
        s=$(date +%s%N)
        "$@" >/dev/null
        e=$(date +%s%N)
        awk -v n=$((e - s)) 'BEGIN { printf "%.3f", n / 1e9 }'
}
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
mib=$(($(stat -c %s "$BIG") >> 20))

# start_daemon STORE: a daemon serving STORE on $SOCK and $PORT, once both answer
start_daemon() {
        "$CASTORE" --store "$1" daemon --listen "$UNIX" --listen "$TCP" 2>>"$W/daemon.log" &
        DPID=$!
        local i
        for i in $(seq 300); do
                [ -S "$SOCK" ] && (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
                kill -0 "$DPID" || break
                sleep 0.1
        done
        echo "bench/remote.sh: the daemon did not start" >&2
        tail -5 "$W/daemon.log" >&2
        exit 1
}
stop_daemon() {
        kill -TERM "$DPID"
        wait "$DPID" || true
        DPID=
}

echo "tree: $TREE ($(find "$TREE" -type f | wc -l) files, $(($(du -sb "$TREE" | cut -f1) >> 20)) MiB), big file $mib MiB"
cat "$BIG" >/dev/null # the source warm for every import

# --- blob Put: import of the big file -------------------------------------------
declare -A R
for mode in nix no-nix; do
        flags=()
        [ $mode = no-nix ] && flags=(--no-nix)
        declare -A T=()
        for round in 1 2 3; do
                # the order rotates: each target goes first once
                for target in $(printf 'local\nunix\ntcp\n' | tail -n +$round; printf 'local\nunix\ntcp\n' | head -n $((round - 1))); do
                        rm -rf "$W/put"
                        case $target in
                        local) T[$target]+=" $(secs "$CASTORE" --store "$W/put" import "$BIG" --name big "${flags[@]}")" ;;
                        unix | tcp)
                                start_daemon "$W/put"
                                [ $target = unix ] && a=$UNIX || a=$TCP
                                T[$target]+=" $(secs "$CASTORE" --store "$a" import "$BIG" --name big "${flags[@]}")"
                                stop_daemon ;;
                        esac
                done
        done
        for target in local unix tcp; do
                # shellcheck disable=SC2086
                R[put_$mode,$target]=$(median ${T[$target]})
                echo "import ($mode) $target: rounds${T[$target]} s, median ${R[put_$mode,$target]} s, $(calc "$mib / ${R[put_$mode,$target]}") MiB/s"
        done
        unset T
done
rm -rf "$W/put"

# --- blob Read: cat without a cache ------------------------------------------------
"$CASTORE" --store "$W/store-big" import "$BIG" --name big >"$W/big.out"
BASE=$(awk '{print $3}' "$W/big.out")
BASE=${BASE#/nix/store/}
start_daemon "$W/store-big"
hyperfine --style basic --runs 5 --warmup 1 -N --output null --export-json "$W/read.json" \
        -n local "$CASTORE --store $W/store-big cat $BASE" \
        -n unix "$CASTORE --store $UNIX cat $BASE" \
        -n tcp "$CASTORE --store $TCP cat $BASE" >"$W/read.txt"
for target in local unix tcp; do
        R[read,$target]=$("$PY" -c 'import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    if r["command"] == sys.argv[2]: print("%.3f" % r["median"])' "$W/read.json" "$target")
        echo "cat $target: median ${R[read,$target]} s, $(calc "$mib / ${R[read,$target]}") MiB/s"
done

# --- Stat latency ----------------------------------------------------------------------
mkdir -p "$W/py"
protoc -I "$SRC_DIR/proto" --python_out="$W/py" --grpc_python_out="$W/py" \
        --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin "$SRC_DIR/proto/rpc_blobstore.proto"
digest=$("$CASTORE" --store "$W/store-big" stat "$BASE" | awk '/^digest:/ {print $2}')
read -r "R[stat_p50]" "R[stat_p99]" "R[stat_n]" < <(PYTHONPATH=$W/py "$PY" - "$SOCK" "$digest" <<'EOF'
import base64, sys, time
import grpc
import rpc_blobstore_pb2 as pb, rpc_blobstore_pb2_grpc as pbg
stub = pbg.BlobServiceStub(grpc.insecure_channel("unix:" + sys.argv[1]))
req = pb.StatBlobRequest(digest=base64.b64decode(sys.argv[2][3:]))
for _ in range(200):
    stub.Stat(req)
t = []
for _ in range(2000):
    s = time.perf_counter_ns()
    stub.Stat(req)
    t.append(time.perf_counter_ns() - s)
t.sort()
print("%.3f %.3f %d" % (t[len(t) // 2] / 1e6, t[len(t) * 99 // 100] / 1e6, len(t)))
EOF
)
echo "Stat over the unix socket (Python client): p50 ${R[stat_p50]} ms, p99 ${R[stat_p99]} ms (${R[stat_n]} calls)"
# castore's own client (bench/stat-latency.c), same daemon, same run
read -r "R[cstat_p50]" "R[cstat_p90]" "R[cstat_p99]" "R[cstat_n]" < <("$STAT_LATENCY" "$UNIX" 5000)
echo "Stat over the unix socket (castore's client): p50 ${R[cstat_p50]} ms, p99 ${R[cstat_p99]} ms (${R[cstat_n]} calls)"
stop_daemon
rm -rf "$W/store-big"

# --- the fs benchmark's tree through mounts ----------------------------------------------
"$CASTORE" --store "$W/store" import "$TREE" --name tree --skip-special >"$W/tree.out"
TBASE=$(awk '{print $3}' "$W/tree.out")
TBASE=${TBASE#/nix/store/}
start_daemon "$W/store"
tarall() { (cd "$1" && tar cf - . | wc -c); }
ddbig() { dd if="$1/big.bin" of=/dev/null bs=1M 2>/dev/null; }
# mnt NAME STORE-ARGS...: a mount as a daemon at $W/mnt-NAME
mnt() {
        local name=$1
        shift
        mkdir -p "$W/mnt-$name"
        "$CASTORE" "$@" mount "$W/mnt-$name" --daemon
}
unmnt() { "$CASTORE" umount "$W/mnt-$1"; }
mnt local --store "$W/store"
L=$W/mnt-local/$TBASE
drop; R[tar,local]=$(secs tarall "$L")
drop; R[dd,local]=$(secs ddbig "$L")
R[tarw,local]=$(secs tarall "$L")
unmnt local
echo "local mount: tar cold ${R[tar,local]} s, dd cold ${R[dd,local]} s, tar warm ${R[tarw,local]} s"
# an empty cache for each cold measure (the tar reads big.bin too)
mnt cold-dd --store "$UNIX" --cache "$W/cache-dd"
drop; R[dd,cold]=$(secs ddbig "$W/mnt-cold-dd/$TBASE")
unmnt cold-dd
mnt cold-tar --store "$UNIX" --cache "$W/cache"
drop; R[tar,cold]=$(secs tarall "$W/mnt-cold-tar/$TBASE")
unmnt cold-tar
echo "remote, empty cache: tar cold ${R[tar,cold]} s, dd cold ${R[dd,cold]} s"
# and without a cache: what filling it costs (each blob written and fsynced)
mnt nocache --store "$UNIX"
drop; R[tar,nocache]=$(secs tarall "$W/mnt-nocache/$TBASE")
drop; R[dd,nocache]=$(secs ddbig "$W/mnt-nocache/$TBASE")
unmnt nocache
echo "remote, no cache: tar cold ${R[tar,nocache]} s, dd cold ${R[dd,nocache]} s"
echo "cache after the tar: $(($(du -sb "$W/cache" | cut -f1) >> 20)) MiB"
mnt cached --store "$UNIX" --cache "$W/cache"
C=$W/mnt-cached/$TBASE
drop; R[tar,cached]=$(secs tarall "$C")
drop; R[dd,cached]=$(secs ddbig "$C")
R[tarw,cached]=$(secs tarall "$C")
unmnt cached
echo "remote, filled cache: tar cold ${R[tar,cached]} s, dd cold ${R[dd,cached]} s, tar warm ${R[tarw,cached]} s"
stop_daemon

# --- report (Markdown) ------------------------------------------------------------------------
met() { awk "BEGIN { exit !($1) }" && echo met || echo "not met"; }
echo
echo "| measure | local | unix socket | TCP | remote / local |"
echo "|---|---|---|---|---|"
for mode in nix no-nix; do
        l=${R[put_$mode,local]} u=${R[put_$mode,unix]} t=${R[put_$mode,tcp]}
        echo "| import $mib MiB file ($mode) | $l s, $(calc "$mib / $l") MiB/s | $u s, $(calc "$mib / $u") MiB/s | $t s, $(calc "$mib / $t") MiB/s | $(calc "$u / $l")× / $(calc "$t / $l")× |"
done
l=${R[read,local]} u=${R[read,unix]} t=${R[read,tcp]}
echo "| cat $mib MiB file, no cache | $l s, $(calc "$mib / $l") MiB/s | $u s, $(calc "$mib / $u") MiB/s | $t s, $(calc "$mib / $t") MiB/s | $(calc "$u / $l")× / $(calc "$t / $l")× |"
echo
echo "| fs tree (unix socket) | local mount | remote, empty cache | remote, filled cache | remote, no cache | empty / local | filled / local | none / local |"
echo "|---|---|---|---|---|---|---|---|"
for k in tar dd; do
        echo "| ${k}_cold | ${R[$k,local]} s | ${R[$k,cold]} s | ${R[$k,cached]} s | ${R[$k,nocache]} s | $(calc "${R[$k,cold]} / ${R[$k,local]}")× | $(calc "${R[$k,cached]} / ${R[$k,local]}")× | $(calc "${R[$k,nocache]} / ${R[$k,local]}")× |"
done
echo "| tar_warm | ${R[tarw,local]} s | | ${R[tarw,cached]} s | | | $(calc "${R[tarw,cached]} / ${R[tarw,local]}")× | |"
echo
echo "Stat over the unix socket, Python grpcio client, ${R[stat_n]} calls: p50 ${R[stat_p50]} ms, p99 ${R[stat_p99]} ms"
echo "Stat over the unix socket, castore's client (bench/stat-latency), ${R[cstat_n]} calls: p50 ${R[cstat_p50]} ms, p90 ${R[cstat_p90]} ms, p99 ${R[cstat_p99]} ms"
echo
best_put=$(awk -v a="$(calc "$mib / ${R[put_no-nix,unix]}")" -v b="$(calc "$mib / ${R[put_no-nix,tcp]}")" 'BEGIN { print (a < b) ? a : b }')
best_read=$(awk -v a="$(calc "$mib / ${R[read,unix]}")" -v b="$(calc "$mib / ${R[read,tcp]}")" 'BEGIN { print (a < b) ? a : b }')
echo "Goals:"
echo "- Put >= 300 MiB/s (slower transport, --no-nix import): $best_put MiB/s: $(met "$best_put >= 300")"
echo "- Read >= 500 MiB/s (slower transport, cat without cache): $best_read MiB/s: $(met "$best_read >= 500")"
echo "- Stat p50 < 0.2 ms (castore's client): ${R[cstat_p50]} ms: $(met "${R[cstat_p50]} < 0.2")"
for k in tar dd; do
        echo "- $k cold, empty cache <= 2x local: $(calc "${R[$k,cold]} / ${R[$k,local]}")×: $(met "${R[$k,cold]} <= 2 * ${R[$k,local]}")"
        echo "- $k cold, filled cache <= 1.1x local: $(calc "${R[$k,cached]} / ${R[$k,local]}")×: $(met "${R[$k,cached]} <= 1.1 * ${R[$k,local]}")"
done
