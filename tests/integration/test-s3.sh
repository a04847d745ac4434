#!/bin/bash
# castore's S3 object store (objectstore+s3://) against a real S3 server
# started here (Ceph radosgw on loopback, s3lib.sh), with directories and
# path infos in a throwaway PostgreSQL 15 (unix socket, pglib.sh):
#  1. import on process A, read on process B (another local store, the
#     options from AWS_* variables): NAR hash and export equal a local
#     import's, a FUSE mount reads right; the bucket follows snix's layout
#     (chunks are zstd frames);
#  2. two versions of a 32 MiB file differing in 100 bytes share >= 90 % of
#     the stored bytes;
#  3. a range read through a mount fetches only the covering chunks;
#  4. S3 stopped mid-import, an importer killed -9: no path info points at
#     missing data, a re-run completes;
#  5. wrong credentials: a clear error, exit 1, no secret in the output; an
#     unreachable endpoint: a clear error within seconds.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/s3lib.sh"
. "$(dirname "$0")/pglib.sh"

PY=/usr/bin/python3
pg_require "s3"

# --- the servers -----------------------------------------------------------------------
if ! s3_start "$T_TMP/s3"; then
        skip "s3" "the S3 server could not start: $S3_WHY"
        exit 77
fi
ok "radosgw answers on $S3_ENDPOINT"
pg_setup "s3"
psql_q postgres "CREATE DATABASE cas" || notok "CREATE DATABASE cas"
for b in cas dedup faults; do s3_mb "$b" || notok "create bucket $b"; done

PGURL="postgresql://castore@/cas?host=$PGD"
HTTPOK="aws_endpoint_url=$S3_ENDPOINT&aws_allow_http=true"
CREDS="aws_access_key_id=$S3_ACCESS_KEY&aws_secret_access_key=$S3_SECRET_KEY"
# sa BUCKET/PREFIX STORE ARGS...: castore on S3 blobs + PostgreSQL, options in the URL
sa() {
        local bp=$1 st=$2; shift 2
        "$CASTORE" --store "$st" --blob-service-addr "objectstore+s3://$bp?$HTTPOK&$CREDS" \
                --directory-service-addr "$PGURL" --path-info-service-addr "$PGURL" "$@"
}
# sb: process B, another local store, the S3 options from the environment
sb() {
        AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY \
                AWS_REGION=us-east-1 "$CASTORE" --store "$T_TMP/storeb" \
                --blob-service-addr "objectstore+s3://cas/store?aws_allow_http=true" \
                --directory-service-addr "$PGURL" --path-info-service-addr "$PGURL" "$@"
}
# s3_keys BUCKET PREFIX: "size key" per object, all pages
s3_keys() {
        local token="" q page
        while :; do
                q="list-type=2&prefix=$(enc "$2")"
                [ -z "$token" ] || q="continuation-token=$(enc "$token")&$q"
                page=$(s3_curl GET "/$1?$q") || return 1
                printf '%s' "$page" | "$PY" -c '
import html, re, sys
x = sys.stdin.read()
for c in re.findall(r"<Contents>(.*?)</Contents>", x):
    print(re.search(r"<Size>(\d+)</Size>", c).group(1), html.unescape(re.search(r"<Key>(.*?)</Key>", c).group(1)),
          flush=True)
m = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", x)
open(sys.argv[1], "w").write(html.unescape(m.group(1)) if "<IsTruncated>true</IsTruncated>" in x and m else "")
' "$T_TMP/token" || return 1
                token=$(cat "$T_TMP/token")
                [ -n "$token" ] || return 0
        done
}
enc() { "$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="-_.~"))' "$1"; }
s3_bytes() { s3_keys "$1" "$2" | awk '{s += $1} END {print s + 0}'; }
s3_puts() { grep -c "\"PUT /$1/" "$S3_DIR/log/client.admin.log" 2>/dev/null || true; }
fuse_check

# --- the source tree -------------------------------------------------------------------
SRC=$T_TMP/src
mkdir -p "$SRC/doc" "$SRC/bin" "$SRC/deep/a/b/c"
ls /usr/share/doc | head -60 | while read -r d; do cp -a "/usr/share/doc/$d" "$SRC/doc/"; done
head -c $((3 << 20)) /dev/urandom >"$SRC/random3m"
: >"$SRC/empty"
printf '#!/bin/sh\necho hi\n' >"$SRC/bin/hello.sh"
chmod 755 "$SRC/bin/hello.sh"
ln -s bin/hello.sh "$SRC/link"
echo deep >"$SRC/deep/a/b/c/f"

# --- 1. import on A, read on B ---------------------------------------------------------
mkdir -p "$T_TMP/nothing"
sb import "$T_TMP/nothing" --no-nix --name nothing >/dev/null 2>&1 || notok "1. process B's local store"
"$CASTORE" --store "$T_TMP/local" import "$SRC" --name tree >/dev/null
lhash=$("$CASTORE" --store "$T_TMP/local" nar hash tree)
if out=$(sa cas/store "$T_TMP/storea" import "$SRC" --name tree 2>"$T_TMP/import.err"); then
        ok "1. import to S3 blobs + PostgreSQL directories and path infos"
else
        sed 's/^/# /' "$T_TMP/import.err" | tail -5
        notok "1. import to S3 blobs + PostgreSQL directories and path infos"
fi
sp=$(printf '%s\n' "$out" | awk '{print $3}')
expect_eq "1. process B (options from AWS_* variables): the NAR hash of the store path equals the local import's" \
        "$(sb nar hash "$sp" 2>&1)" "$lhash"
rm -rf "$T_TMP/outb"
check "1. process B: export equals the tree" sh -c "$(printf '%q ' "$CASTORE") --store $T_TMP/storeb \
        --blob-service-addr 'objectstore+s3://cas/store?$HTTPOK&$CREDS' --directory-service-addr '$PGURL' \
        --path-info-service-addr '$PGURL' export $sp $T_TMP/outb && diff -r --no-dereference $SRC $T_TMP/outb"
keys=$(s3_keys cas store/)
bad=$(printf '%s\n' "$keys" | awk '{print $2}' |
        grep -Ev '^store/(chunks|blobs|outboards)/b3/([0-9a-f]{4})/\2[0-9a-f]{60}$' | head -3)
expect_eq "1. every object follows the layout (PREFIX/{chunks,blobs}/b3/<4 hex>/<64 hex>)" "$bad" ""
nchunks=$(printf '%s\n' "$keys" | grep -c ' store/chunks/')
nblobs=$(printf '%s\n' "$keys" | grep -c ' store/blobs/')
if [ "$nchunks" -gt 12 ] && [ "$nblobs" -ge 1 ]; then ok "1. $nchunks chunks and $nblobs blob indexes"
else notok "1. $nchunks chunks and $nblobs blob indexes"; fi
chunk=$(printf '%s\n' "$keys" | awk '$1 > 1000 && $2 ~ /chunks/ {print $2; exit}')
expect_eq "1. a chunk is a zstd frame (GET through the S3 API)" \
        "$(s3_curl GET "/cas/$chunk" | head -c 4 | od -An -tx1 | tr -d ' \n')" 28b52ffd
if [ $FUSE = 0 ]; then
        skip "1. FUSE mount on process B" "$WHY_NO_FUSE"
else
        check_mount_tree "1. process B mounts it (confined)" "$SRC" "$T_TMP/mb" "${sp#/nix/store/}" sb
fi

# --- 2. dedup between two versions of a 32 MiB file ------------------------------------
V=$T_TMP/v1 W=$T_TMP/v2
mkdir -p "$V" "$W"
head -c $((32 << 20)) /dev/urandom >"$V/big"
cp "$V/big" "$W/big"
head -c 100 /dev/urandom | dd of="$W/big" bs=1 seek=$((13 << 20)) conv=notrunc status=none
sa dedup/d "$T_TMP/dedup" import "$V" --name v1 >/dev/null 2>"$T_TMP/dedup.err" || notok "2. import v1"
b1=$(s3_bytes dedup d/)
sa dedup/d "$T_TMP/dedup" import "$W" --name v2 >/dev/null 2>>"$T_TMP/dedup.err" || notok "2. import v2"
b2=$(s3_bytes dedup d/)
shared=$(( (2 * b1 - b2) * 100 / b1 ))
if [ "$b1" -gt $((32 << 20)) ] && [ "$shared" -ge 90 ]; then
        ok "2. the two versions share $shared % of the stored bytes ($b1 bytes, then $b2)"
else notok "2. the two versions share $shared % of the stored bytes ($b1 bytes, then $b2)"; fi

# --- 3. a range read through a mount fetches the covering chunks only ------------------
if [ $FUSE = 0 ]; then
        skip "3. range read through a mount" "$WHY_NO_FUSE"
else
        MD=$T_TMP/md
        mkdir -p "$MD"
        if sa dedup/d "$T_TMP/dedup" mount "$MD" --daemon 2>"$T_TMP/mountd.err"; then
                stat "$MD/v1/big" >/dev/null
                g0=$(s3_gets)
                got=$(dd if="$MD/v1/big" bs=128k skip=100 count=1 status=none | b3sum --no-names 2>/dev/null ||
                        dd if="$MD/v1/big" bs=128k skip=100 count=1 status=none | sha256sum)
                want=$(dd if="$V/big" bs=128k skip=100 count=1 status=none | b3sum --no-names 2>/dev/null ||
                        dd if="$V/big" bs=128k skip=100 count=1 status=none | sha256sum)
                sleep 0.5
                g=$(( $(s3_gets) - g0 ))
                expect_eq "3. 128 KiB at 12.5 MiB of a 32 MiB file read through the mount" "$got" "$want"
                if [ "$g" -le 6 ]; then ok "3. ... fetched with $g GETs (the index, outboard, covering chunks)"
                else notok "3. ... fetched with $g GETs (want at most 6, of $(( (32 << 20) >> 18 )) chunks)"; fi
                unmount "$MD" || notok "3. umount"
        else
                sed 's/^/# /' "$T_TMP/mountd.err" | tail -5
                notok "3. mount for the range read"
        fi
fi

# --- 4. faults mid-import: nothing half-registered -------------------------------------
F=$T_TMP/f
mkdir -p "$F"
for i in 1 2 3 4 5 6; do head -c $((12 << 20)) /dev/urandom >"$F/r$i"; done
npaths=$(psql_q cas 'SELECT count(*) FROM pathinfos')
t0=$(date +%s%N)
sa faults/f "$T_TMP/fstore" import "$F" --name f >/dev/null 2>"$T_TMP/fault.err" &
imp=$!
wait_until 60 sh -c "[ \$(grep -c '\"PUT /faults/' '$S3_DIR/log/client.admin.log') -gt 5 ]" ||
        notok "4. the importer started uploading"
s3_stop_gw
rc=0
wait "$imp" || rc=$?
secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
expect_eq "4. S3 stopped mid-import: the import fails (exit 1)" "$rc" 1
if grep -q "s3 $S3_ENDPOINT bucket faults" "$T_TMP/fault.err"; then ok "4. ... with an error naming the endpoint and bucket"
else sed 's/^/# /' "$T_TMP/fault.err" | tail -3; notok "4. ... with an error naming the endpoint and bucket"; fi
expect_eq "4. ... and no new path info" "$(psql_q cas 'SELECT count(*) FROM pathinfos')" "$npaths"
s3_start_gw || notok "4. radosgw restarts"
G=$T_TMP/g # new content: nothing of it is in the bucket yet
mkdir -p "$G"
for i in 1 2 3 4 5 6; do head -c $((12 << 20)) /dev/urandom >"$G/r$i"; done
p0=$(s3_puts faults)
sa faults/f "$T_TMP/fstore" import "$G" --name g >/dev/null 2>"$T_TMP/fault2.err" &
imp=$!
wait_until 60 sh -c "[ \$(grep -c '\"PUT /faults/' '$S3_DIR/log/client.admin.log') -gt $((p0 + 5)) ]" ||
        notok "4. the second importer started uploading"
kill -9 "$imp"
wait "$imp" 2>/dev/null
expect_eq "4. importer killed -9 mid-import: no new path info" "$(psql_q cas 'SELECT count(*) FROM pathinfos')" "$npaths"
check "4. ... and a re-run completes" sa faults/f "$T_TMP/fstore" import "$G" --name g
if out=$(sa faults/f "$T_TMP/fstore" import "$F" --name f 2>"$T_TMP/fault3.err"); then
        ok "4. a re-run completes"
else sed 's/^/# /' "$T_TMP/fault3.err" | tail -3; notok "4. a re-run completes"; fi
rm -rf "$T_TMP/outf"
check "4. ... and exports equal to the tree" sh -c "$(printf '%q ' "$CASTORE") --store $T_TMP/fstore \
        --blob-service-addr 'objectstore+s3://faults/f?$HTTPOK&$CREDS' --directory-service-addr '$PGURL' \
        --path-info-service-addr '$PGURL' export f $T_TMP/outf && diff -r $F $T_TMP/outf"

# --- 5. wrong credentials, unreachable endpoint ----------------------------------------
WRONG=WrongSecretXYZ987
rc=0
"$CASTORE" --store "$T_TMP/wrong" --blob-service-addr \
        "objectstore+s3://cas/store?$HTTPOK&aws_access_key_id=$S3_ACCESS_KEY&aws_secret_access_key=$WRONG" \
        import "$SRC/bin" >"$T_TMP/wrong.out" 2>&1 || rc=$?
expect_eq "5. wrong credentials: exit 1" "$rc" 1
if grep -q "access denied (HTTP 403" "$T_TMP/wrong.out"; then ok "5. ... saying access is denied"
else sed 's/^/# /' "$T_TMP/wrong.out" | tail -3; notok "5. ... saying access is denied"; fi
if grep -q -e "$WRONG" -e "$S3_SECRET_KEY" "$T_TMP"/*.err "$T_TMP/wrong.out"; then
        notok "5. no secret key in any output"
else ok "5. no secret key in any output"; fi
dead=$(s3_free_port)
rc=0
t0=$(date +%s%N)
"$CASTORE" --store "$T_TMP/dead" --blob-service-addr \
        "objectstore+s3://cas/store?aws_endpoint_url=http://127.0.0.1:$dead&aws_allow_http=true&$CREDS" \
        import "$SRC/bin" >"$T_TMP/dead.out" 2>&1 || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
expect_eq "5. unreachable endpoint: exit 1" "$rc" 1
if grep -q "s3 http://127.0.0.1:$dead bucket cas: .*after retries" "$T_TMP/dead.out" && [ "$ms" -lt 15000 ]; then
        ok "5. ... a clear error naming the endpoint within ${ms} ms"
else sed 's/^/# /' "$T_TMP/dead.out" | tail -3; notok "5. ... a clear error naming the endpoint within ${ms} ms"; fi
