#!/bin/bash
# Distributed store benchmark: blobs on S3 (a radosgw started here on
# loopback, tests/integration/s3lib.sh), directories and path infos in
# PostgreSQL 15 (a throwaway cluster on a unix socket), against a local
# store, all ratios from one run:
#  - import of the benchmark tree (bench/lib.sh's bench_tree) to S3 +
#    PostgreSQL vs to a local store;
#  - a mount of the S3 + PostgreSQL store walked and read (tar of the
#    tree) cold with an empty --cache, warm with the cache filled, and
#    without a cache, each vs a local mount of the local store (page cache
#    dropped before each);
#  - the dedup ratio of two versions of a tree (the second with every
#    100th file changed in 100 bytes and one directory of files added):
#    bytes stored for both / bytes stored for the first;
#  - PostgreSQL directory puts per second: import of a tree of many small
#    directories (blobs in a local store), directories / seconds, and the
#    same over the time the import takes beyond a local store's.
#
# Usage (root): bench/distributed.sh [WORKDIR] (default
# /var/tmp/castore-bench-distributed).  BENCH_MIN_FILES, BENCH_MIN_BYTES:
# the tree's size (bench/lib.sh); BENCH_TREE=DIR: this tree instead (a
# quick check: BENCH_TREE=/usr/share/doc); BENCH_PG_DIRS: directories of
# the directory-put tree (default 20000).
. "$(dirname "$0")/lib.sh"
W=${1:-/var/tmp/castore-bench-distributed}
PGBIN=/usr/lib/postgresql/15/bin
PY=/usr/bin/python3
PG_DIRS=${BENCH_PG_DIRS:-20000}
[ "$(id -u)" = 0 ] || { echo "bench/distributed.sh: needs root (drop_caches, mount)" >&2; exit 1; }
[ -x "$CASTORE" ] || { echo "bench/distributed.sh: no castore binary at $CASTORE" >&2; exit 1; }

# the helpers s3lib.sh expects from the tests' lib.sh
CLEANUP=()
at_exit() { CLEANUP+=("$1"); }
have() { command -v "$1" >/dev/null 2>&1; }
pid_gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
wait_until() {
        local deadline=$(($(date +%s) + $1)); shift
        until "$@"; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.05; done
}
. "$SRC_DIR/tests/integration/s3lib.sh"

cleanup() {
        local m i
        set +e
        for m in "$W"/mnt-*; do grep -q " $m " /proc/mounts && { umount "$m" 2>/dev/null || umount -l "$m"; }; done
        # last registered first: a server stops before its directory goes
        for ((i = ${#CLEANUP[@]} - 1; i >= 0; i--)); do eval "${CLEANUP[i]}" >/dev/null 2>&1; done
        return 0
}
trap cleanup EXIT

for m in "$W"/mnt-*; do if grep -q " $m " /proc/mounts; then umount -l "$m"; fi; done
rm -rf "$W/s3" "$W/pg" "$W"/store-* "$W"/cache-* "$W"/mnt-* "$W/v2" "$W/dirs"
mkdir -p "$W"
TREE=${BENCH_TREE:-$W/tree}
if [ -z "${BENCH_TREE:-}" ]; then
        echo "building the tree ($MIN_FILES files, $MIN_BYTES bytes at least)" >&2
        bench_tree "$TREE"
fi
read -r nfiles nbytes < <(tree_stats "$TREE")

s3_start "$W/s3" || { echo "bench/distributed.sh: the S3 server did not start: $S3_WHY" >&2; exit 1; }
s3_mb bench && s3_mb dedup
mkdir -p "$W/pg" && chown postgres "$W/pg" && chmod 755 "$W/pg"
pg_ctl() { (cd / && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg/data" "$@"); }
(cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" -U castore --auth=trust -E UTF8 --no-sync) >/dev/null
pg_ctl -l "$W/pg/log" -w -t 60 -o "-c listen_addresses='' -k $W/pg" start >/dev/null
at_exit "pg_ctl -m immediate stop"
for db in bench dedup dirs; do "$PGBIN/psql" -X -q "postgresql:///postgres?host=$W/pg&user=castore" -c "CREATE DATABASE $db"; done

S3OPT="aws_endpoint_url=$S3_ENDPOINT&aws_allow_http=true&aws_access_key_id=$S3_ACCESS_KEY&aws_secret_access_key=$S3_SECRET_KEY"
# dist STORE BUCKET/PREFIX DB: castore's arguments for it in DA
dist() {
        DA=(--store "$1" --blob-service-addr "objectstore+s3://$2?$S3OPT"
                --directory-service-addr "postgresql://castore@/$3?host=$W/pg"
                --path-info-service-addr "postgresql://castore@/$3?host=$W/pg")
}
s3_bytes() {  # BUCKET: bytes stored (all pages)
        local token="" q out=0 n
        while :; do
                q="list-type=2"
                [ -z "$token" ] || q="continuation-token=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="-_.~"))' "$token")&$q"
                read -r n token < <(s3_curl GET "/$1?$q" | "$PY" -c '
import html, re, sys
x = sys.stdin.read()
m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", x)
print(sum(int(s) for s in re.findall(r"<Size>(\d+)</Size>", x)),
      html.unescape(m.group(1)) if "<IsTruncated>true</IsTruncated>" in x and m else "")')
                out=$((out + n))
                [ -n "$token" ] || { echo "$out"; return 0; }
        done
}

echo "tree: $nfiles files, $nbytes bytes" >&2
echo "import" >&2
drop_caches; timed "import, local store" "$CASTORE" --store "$W/store-local" import "$TREE" --name tree
t_local=$T_SECS
dist "$W/store-dist" bench/tree bench
drop_caches; timed "import, S3 + PostgreSQL" "$CASTORE" "${DA[@]}" import "$TREE" --name tree
t_dist=$T_SECS

echo "mount walks (tar of the tree, page cache dropped)" >&2
walk() { drop_caches; timed "$1" sh -c 'tar cf - -C "$1" . | cat >/dev/null' walk "$2"; }
mkdir -p "$W/mnt-local" "$W/mnt-dist" "$W/mnt-nocache"
"$CASTORE" --store "$W/store-local" mount "$W/mnt-local" --daemon
walk "local mount" "$W/mnt-local/tree"; m_local=$T_SECS
"$CASTORE" "${DA[@]}" --cache "$W/cache-dist" mount "$W/mnt-dist" --daemon
walk "S3 mount, cold cache" "$W/mnt-dist/tree"; m_cold=$T_SECS
walk "S3 mount, warm cache" "$W/mnt-dist/tree"; m_warm=$T_SECS
"$CASTORE" "${DA[@]}" mount "$W/mnt-nocache" --daemon
walk "S3 mount, no cache" "$W/mnt-nocache/tree"; m_none=$T_SECS
for m in "$W"/mnt-*; do "$CASTORE" umount "$m"; done

echo "dedup of two versions" >&2
cp -a "$TREE" "$W/v2"
find "$W/v2" -type f -size +1k | awk 'NR % 100 == 0' | while read -r f; do
        head -c 100 /dev/urandom | dd of="$f" bs=1 seek=$(( $(stat -c %s "$f") / 2 )) conv=notrunc status=none
done
mkdir -p "$W/v2/added" && cp -a /usr/share/doc/bash "$W/v2/added/" 2>/dev/null || true
dist "$W/store-dedup" dedup/d dedup
"$CASTORE" "${DA[@]}" import "$TREE" --name v1 >/dev/null
b1=$(s3_bytes dedup)
"$CASTORE" "${DA[@]}" import "$W/v2" --name v2 >/dev/null
b2=$(s3_bytes dedup)

echo "PostgreSQL directory puts" >&2
mkdir -p "$W/dirs"
"$PY" - "$W/dirs" "$PG_DIRS" <<'PYEOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "%03d" % (i % 200), "d%d" % i)
    os.makedirs(d)
    with open(os.path.join(d, "f"), "w") as f:
        f.write(str(i))
PYEOF
ndirs=$(find "$W/dirs" -type d | wc -l)
timed "import of $ndirs directories" "$CASTORE" --store "$W/store-dirs" \
        --directory-service-addr "postgresql://castore@/dirs?host=$W/pg" \
        --path-info-service-addr "postgresql://castore@/dirs?host=$W/pg" import "$W/dirs" --name dirs
t_dirs=$T_SECS
# the same import into a local store: what is not PostgreSQL's
timed "import of $ndirs directories, local" "$CASTORE" --store "$W/store-dirs-local" import "$W/dirs" --name dirs
t_dirs_local=$T_SECS

cat <<R
== distributed (S3 on radosgw + PostgreSQL 15, loopback) ==
tree: $nfiles files, $nbytes bytes
import: local ${t_local} s, S3+PostgreSQL ${t_dist} s, ratio $(ratio "$t_dist" "$t_local")
mount walk (tar): local ${m_local} s; S3 cold cache ${m_cold} s ($(ratio "$m_cold" "$m_local")x), warm cache ${m_warm} s ($(ratio "$m_warm" "$m_local")x), no cache ${m_none} s ($(ratio "$m_none" "$m_local")x)
dedup: v1 ${b1} bytes stored, v1+v2 ${b2} bytes, stored/first = $(ratio "$b2" "$b1") (2.00 would be no sharing)
PostgreSQL directory puts: $ndirs in ${t_dirs} s = $(awk -v n="$ndirs" -v t="$t_dirs" 'BEGIN { if (t > 0) printf "%d", n / t; else print "n/a" }')/s (goal >= 20000/s)
  the same import into a local store: ${t_dirs_local} s; PostgreSQL's share ($(awk -v a="$t_dirs" -v b="$t_dirs_local" 'BEGIN { printf "%.2f", a - b }') s): $(awk -v n="$ndirs" -v a="$t_dirs" -v b="$t_dirs_local" 'BEGIN { if (a > b) printf "%d", n / (a - b); else print "n/a" }')/s
R
