#!/bin/bash
# castore's PostgreSQL directory and PathInfo services against a real
# PostgreSQL 15 started here (initdb + pg_ctl as an unprivileged user, a
# unix socket in a scratch directory, no TCP), blobs in a local store:
#  0. the unit tests of the backends (test-pg, test-dirsvc, test-pathinfo)
#     run against the server;
#  1. import of a real tree; ls, cat, export, nar, verify, path-info equal
#     to the tree and to a local-only import;
#  2. two gRPC daemons and a direct CLI on the database see each other's
#     imports at once; a FUSE mount over it reads right and sees another
#     process's import at once;
#  3. two importers at once on overlapping trees;
#  4. a damaged directory row and a damaged PathInfo row: clear errors,
#     listings go on past them, a re-import repairs;
#  5. the server stopped under a mount and mid-import: clear errors within
#     seconds naming the endpoint with the password masked, nothing half
#     registered; restarted: the next command and the same mount work;
#  6. migrations: a version-1 schema made by hand is migrated (edges
#     indexed), concurrent openers of a fresh database, a newer schema
#     refused untouched;
#  7. refusals: blobs in PostgreSQL, gc, a composition file;
#  8. blobs in an object store (objectstore+file://) with the directories
#     and path infos in PostgreSQL: import, reads, a confined mount, verify,
#     no blob in the local store (which keeps the named roots), gc refused, a composition
#     file, --store postgresql:// with object-store blobs refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pglib.sh"

PY=/usr/bin/python3
pg_require "postgres"
have b3sum || { skip "postgres" "b3sum is not installed"; exit 77; }

# --- the server ----------------------------------------------------------------------
pg_setup "postgres"
for db in cas old new fresh unit objs; do psql_q postgres "CREATE DATABASE $db" || notok "CREATE DATABASE $db"; done
ok "PostgreSQL 15 runs on a unix socket in $PGD"

# --- 0. the unit tests of the backends against this server ---------------------------
for t in pg dirsvc pathinfo; do
        exe=$BUILD_DIR/tests/unit/test-$t
        if [ -x "$exe" ]; then
                CASTORE_TEST_PG="postgresql:///unit?host=$PGD&user=castore" check "0. unit test-$t against the server" "$exe"
        else
                skip "0. unit test-$t against the server" "$exe is not built (-Dtests=false?)"
        fi
done

SECRET=S3cretPW
URL="postgresql://castore:$SECRET@/cas?host=$PGD"
MASKED="postgresql://castore:***@/cas?host=$PGD"
STORE=$T_TMP/store   # the blobs (and named roots) beside the database
LSTORE=$T_TMP/lstore # a local-only import, for comparison
PGA=(--directory-service-addr "$URL" --path-info-service-addr "$URL")
cas() { "$CASTORE" --store "$STORE" "${PGA[@]}" "$@"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
# no_secret NAME FILE...: the password appears in none of the files
# export_eq NAME SRC: export of NAME equals SRC
export_eq() { rm -rf "$T_TMP/out-$1" && cas export "$1" "$T_TMP/out-$1" && diff -r --no-dereference "$2" "$T_TMP/out-$1"; }
no_secret() {
        if grep -l "$SECRET" "${@:2}" 2>/dev/null; then notok "$1: the password appears in messages"
        else ok "$1: the password appears in no message"; fi
}
b3_hex() { "$PY" -c 'import base64, sys; print(base64.b64decode(sys.argv[1][3:]).hex())' "$1"; }
node_digest() { cas stat --json "$1" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["digest"])'; }
fuse_check

# --- the source trees ------------------------------------------------------------------
SRC=$T_TMP/src
mkdir -p "$SRC/doc" "$SRC/bin" "$SRC/deep/a/b/c/d/e"
ls /usr/share/doc | head -80 | while read -r d; do cp -a "/usr/share/doc/$d" "$SRC/doc/"; done
head -c $((3 << 20)) /dev/urandom >"$SRC/random3m"
: >"$SRC/empty"
printf '#!/bin/sh\necho hi from postgres\n' >"$SRC/bin/hello.sh"
chmod 755 "$SRC/bin/hello.sh"
ln -s bin/hello.sh "$SRC/link"
echo deep >"$SRC/deep/a/b/c/d/e/f"
printf 'a name with a space\n' >"$SRC/with space.txt"
echo "# source tree: $(find "$SRC" -type f | wc -l) files, $(find "$SRC" -type d | wc -l) directories"

# --- 1. import and read back -----------------------------------------------------------
if out=$(cas import "$SRC" --name tree 2>"$T_TMP/import.err"); then
        ok "1. import into a local blob store with PostgreSQL directories and path infos"
else
        sed 's/^/# /' "$T_TMP/import.err" | tail -5
        notok "1. import"
        exit 1
fi
SP=$(echo "$out" | awk '{print $3}')
BASE=${SP#/nix/store/}
echo "# $out"
lout=$("$CASTORE" --store "$LSTORE" import "$SRC" --name tree 2>&1) || notok "1. local import"
expect_eq "1. same root digest and store path as a local import" "$out" "$lout"
expect_eq "1. schema version 2" "$(psql_q cas 'SELECT version FROM castore_schema')" 2
expect_eq "1. every directory is a row" "$(psql_q cas 'SELECT count(*) FROM directories')" \
        "$(find "$SRC" -type d | wc -l)"
expect_eq "1. an edge per child directory" "$(psql_q cas 'SELECT count(*) FROM directory_edges')" \
        "$(($(find "$SRC" -mindepth 1 -type d | wc -l)))"
expect_eq "1. one path info row" "$(psql_q cas 'SELECT count(*), length(digest) FROM pathinfos GROUP BY 2')" "1|20"
check "1. export equals the tree" export_eq tree "$SRC"
expect_eq "1. nar dump equals the local import's" "$(cas nar dump tree | sha256sum)" \
        "$("$CASTORE" --store "$LSTORE" nar dump tree | sha256sum)"
expect_eq "1. nar hash equals the local import's" "$(cas nar hash "$BASE")" "$("$CASTORE" --store "$LSTORE" nar hash "$BASE")"
check "1. cat of the 3 MiB file" cmp <(cas cat tree/random3m) "$SRC/random3m"
expect_eq "1. ls -R equals the local store's" "$(cas ls -R tree)" "$("$CASTORE" --store "$LSTORE" ls -R tree)"
expect_eq "1. path-info --all" "$(cas path-info --all | grep -c "^StorePath: $SP")" 1
check "1. verify is clean" cas verify
check "1. verify --nar is clean" cas verify --nar
# --blob-service-addr instead of --store
expect_eq "1. --blob-service-addr DIR reads the same" \
        "$("$CASTORE" --blob-service-addr "$STORE" "${PGA[@]}" cat tree/bin/hello.sh)" "$(cat "$SRC/bin/hello.sh")"

# --- 2. two gRPC daemons and a direct CLI on the same database ------------------------
DP=()
for i in 1 2; do
        # not through cas(): $! must be castore itself, or kill leaves it running
        "$CASTORE" --store "$STORE" "${PGA[@]}" daemon --listen "grpc+unix://$T_TMP/d$i.sock" 2>"$T_TMP/daemon$i.err" &
        DP+=($!)
        at_exit "kill ${DP[$((i - 1))]}"
done
if wait_until 30 sh -c "[ -S '$T_TMP/d1.sock' ] && [ -S '$T_TMP/d2.sock' ]"; then
        ok "2. two daemons serve the store with PostgreSQL directories"
        SRC3=$T_TMP/src3
        mkdir -p "$SRC3/p/q"
        echo "through a daemon" >"$SRC3/p/q/r"
        out3=$("$CASTORE" --store "grpc+unix://$T_TMP/d1.sock" import "$SRC3" --name viadaemon 2>&1) ||
                notok "2. import through daemon 1"
        B3=$(echo "$out3" | awk '{print $3}')
        B3=${B3#/nix/store/}
        expect_eq "2. daemon 2 serves what was imported through daemon 1 at once" \
                "$("$CASTORE" --store "grpc+unix://$T_TMP/d2.sock" cat "$B3/p/q/r" 2>&1)" "through a daemon"
        expect_eq "2. the direct CLI reads it too" "$(cas cat "$B3/p/q/r" 2>&1)" "through a daemon"
        expect_eq "2. daemon 2 serves the direct CLI's import" \
                "$("$CASTORE" --store "grpc+unix://$T_TMP/d2.sock" nar hash "$BASE" 2>&1)" "$(cas nar hash "$BASE")"
else
        sed 's/^/# /' "$T_TMP"/daemon*.err | tail -5
        notok "2. two daemons serve the store with PostgreSQL directories"
fi
for p in "${DP[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
no_secret "2. daemons" "$T_TMP"/daemon*.err

# --- 2. a FUSE mount ------------------------------------------------------------------
mounted() { grep -q " $1 fuse.castore " /proc/mounts; }
# read_errno PATH: OK, an errno name, or TIMEOUT (60 s), and the time taken
read_errno() {
        local start r
        start=$(date +%s%N)
        r=$(timeout 60 "$PY" -c '
import errno, os, sys
try:
    if os.path.isdir(sys.argv[1]):
        os.listdir(sys.argv[1])
    else:
        open(sys.argv[1], "rb").read()
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$1") || r=${r:-TIMEOUT}
        echo "$r $(ms_since "$start")"
}
M=$T_TMP/m
if [ $FUSE = 0 ]; then
        skip "2. FUSE mount" "$WHY_NO_FUSE"
else
        mkdir -p "$M"
        if cas mount "$M" --daemon 2>"$T_TMP/mount.err"; then
                ok "2. mount with PostgreSQL directories"
                check "2. diff -r of the mount against the tree" diff -r --no-dereference "$SRC" "$M/$BASE"
                expect_eq "2. the executable runs" "$("$M/$BASE/link" 2>&1)" "hi from postgres"
                # another process imports: the running mount sees it at once
                SRC2=$T_TMP/src2
                mkdir -p "$SRC2/x"
                echo "second tree" >"$SRC2/x/y"
                out2=$(cas import "$SRC2" --name second 2>&1) || notok "2. a second import"
                BASE2=$(echo "$out2" | awk '{print $3}')
                BASE2=${BASE2#/nix/store/}
                expect_eq "2. the mount sees the other process's import at once" "$(cat "$M/$BASE2/x/y" 2>&1)" "second tree"
                no_secret "2. mount" "$T_TMP/mount.err"
        else
                sed 's/^/# /' "$T_TMP/mount.err" | tail -5
                notok "2. mount with PostgreSQL directories"
        fi
fi

# --- 3. two importers at once on overlapping trees -----------------------------------
A=$T_TMP/ovA B=$T_TMP/ovB
mkdir -p "$A" "$B"
cp -a "$SRC/doc" "$A/doc"
cp -a "$SRC/doc" "$B/doc"
cp -a "$SRC/deep" "$A/"
echo only-a >"$A/only-a"
echo only-b >"$B/only-b"
cas import "$A" --name ovA >"$T_TMP/ovA.out" 2>"$T_TMP/ovA.err" &
pa=$!
cas import "$B" --name ovB >"$T_TMP/ovB.out" 2>"$T_TMP/ovB.err" &
pb=$!
rca=0 rcb=0
wait $pa || rca=$?
wait $pb || rcb=$?
expect_eq "3. two concurrent importers of overlapping trees both succeed" "$rca $rcb" "0 0"
cat "$T_TMP/ovA.err" "$T_TMP/ovB.err" | sed 's/^/# /' | tail -5
for t in ovA ovB; do
        src=$A
        [ $t = ovB ] && src=$B
        check "3. $t exports equal to its tree" export_eq $t "$src"
done
check "3. verify after the concurrent imports" cas verify
expect_eq "3. the shared doc tree is one row" \
        "$(psql_q cas "SELECT count(*) FROM directories WHERE digest = '\\x$(b3_hex "$(node_digest ovA/doc)")'")" 1
expect_eq "3. path-info --all lists every import" "$(cas path-info --all | grep -c '^StorePath: ')" \
        "$( [ $FUSE = 1 ] && echo 5 || echo 4)"

# --- 4. damaged rows --------------------------------------------------------------------
D_HEX=$(b3_hex "$(node_digest tree/deep/a)")
psql_q cas "UPDATE directories SET data = overlay(data placing '\\xff'::bytea from 2 for 1) WHERE digest = '\\x$D_HEX'" ||
        notok "4. damage a directory row"
rc=0
start=$(date +%s%N)
cas ls tree/deep/a >/dev/null 2>"$T_TMP/dmg.err" || rc=$?
expect_eq "4. ls of a damaged directory fails (exit 1)" "$rc" 1
check "4. ... saying it is corrupt ($(head -1 "$T_TMP/dmg.err"))" grep -q "Stored directory b3:.* is corrupt" "$T_TMP/dmg.err"
rc=0
cas export tree "$T_TMP/out-dmg" >/dev/null 2>"$T_TMP/dmg2.err" || rc=$?
expect_eq "4. export through the damaged directory fails" "$rc" 1
rc=0
cas verify >"$T_TMP/verify.out" 2>&1 || rc=$?
expect_eq "4. verify finds the damaged directory (exit 1)" "$rc" 1
check "4. verify still checks the other trees" grep -q "checked .* [1-9][0-9]* directories" "$T_TMP/verify.out"
# a damaged path info: the listing goes on past it and says so
psql_q cas "UPDATE pathinfos SET data = '\\x0aff01'::bytea WHERE digest = (SELECT digest FROM pathinfos ORDER BY digest LIMIT 1)" ||
        notok "4. damage a path info row"
rc=0
cas path-info --all >"$T_TMP/pi.out" 2>"$T_TMP/pi.err" || rc=$?
expect_eq "4. path-info --all with a damaged row: exit 1" "$rc" 1
check "4. ... says a PathInfo is corrupt" grep -q "Stored PathInfo is corrupt" "$T_TMP/pi.err"
rc=0
cas verify >"$T_TMP/verify2.out" 2>&1 || rc=$?
expect_eq "4. verify with a damaged path info: exit 1" "$rc" 1
check "4. ... checking the other store paths ($(grep -o '[0-9]* store paths' "$T_TMP/verify2.out"))" \
        grep -q "checked .* $( [ $FUSE = 1 ] && echo 4 || echo 3) store paths" "$T_TMP/verify2.out"
# a re-import repairs both
for t in tree ovA ovB second viadaemon; do
        case $t in tree) s=$SRC ;; ovA) s=$A ;; ovB) s=$B ;; second) s=${SRC2:-} ;; viadaemon) s=${SRC3:-} ;; esac
        [ -n "$s" ] && { cas import "$s" --name $t >/dev/null 2>>"$T_TMP/repair.err" || notok "4. re-import $t"; }
done
check "4. the re-import replaced the damaged directory" grep -q "Replacing the corrupt record of directory" "$T_TMP/repair.err"
check "4. verify after the re-imports" cas verify
check "4. path-info --all after the re-imports" cas path-info --all

# --- 5. the server stopped and restarted ----------------------------------------------
if [ $FUSE = 1 ] && mounted "$M"; then
        # ovA was imported after the mount's reads: never looked up by it
        BASE_A=$(awk '{print $3}' "$T_TMP/ovA.out")
        BASE_A=${BASE_A#/nix/store/}
        pg_stop || notok "5. stop the server"
        read -r e ms < <(read_errno "$M/$BASE_A/deep/a/b/c/d/e")
        expect_eq "5. the mount, server stopped: a tree never read fails with EIO ($ms ms)" "$e" EIO
        check "5. ... within 20 s" test "$ms" -lt 20000
        check "5. ... and the mount stays up" mounted "$M"
        pg_start || notok "5. restart the server"
        read -r e ms < <(read_errno "$M/$BASE_A/deep/a/b/c/d/e/f")
        expect_eq "5. the same mount after the restart reads again ($ms ms)" "$e" OK
        check "5. diff -r of the mount after the restart" diff -r --no-dereference "$SRC" "$M/$BASE"
fi
pg_stop || notok "5. stop the server"
start=$(date +%s%N)
rc=0
timeout 60 "$CASTORE" --store "$STORE" "${PGA[@]}" ls tree >/dev/null 2>"$T_TMP/down.err" || rc=$?
ms=$(ms_since "$start")
expect_eq "5. ls with the server stopped fails (exit 1, $ms ms)" "$rc" 1
check "5. ... within 20 s" test "$ms" -lt 20000
echo "# $(grep -m1 PostgreSQL "$T_TMP/down.err")"
check "5. ... naming the endpoint with the password masked" grep -qF "PostgreSQL at $MASKED" "$T_TMP/down.err"
no_secret "5. server stopped" "$T_TMP/down.err"
pg_start || notok "5. restart the server"
check "5. the next command works after the restart" cas ls tree

# mid-import: the server stops while an importer hashes blobs
BIG=$T_TMP/big
mkdir -p "$BIG"
for i in $(seq 1 40); do cp -a "$SRC/doc" "$BIG/d$i"; head -c $((1 << 20)) /dev/urandom >"$BIG/d$i/blob"; done
"$CASTORE" --store "$STORE" "${PGA[@]}" import "$BIG" --name big >/dev/null 2>"$T_TMP/big.err" &
pbig=$!
wait_until 60 sh -c "ls '$STORE/tmp/' 2>/dev/null | grep -qv lock || [ ! -e /proc/$pbig ]"
pg_stop || notok "5. stop the server mid-import"
start=$(date +%s%N)
rc=0
if wait_until 120 pid_gone $pbig; then wait $pbig || rc=$?; else kill -9 $pbig; rc=hang; fi
ms=$(ms_since "$start")
if [ "$rc" = 0 ]; then
        skip "5. import with the server stopped mid-way" "the import finished before the server stopped"
else
        expect_eq "5. import with the server stopped mid-way fails (exit 1, $ms ms after the stop)" "$rc" 1
        check "5. ... naming the endpoint with the password masked" grep -qF "PostgreSQL at $MASKED" "$T_TMP/big.err"
        no_secret "5. mid-import" "$T_TMP/big.err"
fi
pg_start || notok "5. restart the server"
if [ "$rc" != 0 ]; then
        rc=0
        cas ls big >/dev/null 2>&1 || rc=$?
        expect_eq "5. nothing of the failed import is registered" "$rc" 1
fi
check "5. the import completes after the restart" cas import "$BIG" --name big
check "5. verify after the restart" cas verify
if [ $FUSE = 1 ] && mounted "$M"; then check "2. umount" unmount "$M"; fi

# --- 6. migrations ------------------------------------------------------------------------
# a version 1 database (no edge table) made by hand, holding cas's rows
psql_q old "CREATE TABLE castore_schema (version integer NOT NULL); INSERT INTO castore_schema VALUES (1);
        CREATE TABLE directories (digest bytea PRIMARY KEY, size bigint NOT NULL, data bytea NOT NULL);
        CREATE TABLE pathinfos (digest bytea PRIMARY KEY, data bytea NOT NULL)" || notok "6. a version 1 schema"
for t in directories pathinfos; do
        psql_q cas "COPY $t TO STDOUT" | psql_q old "COPY $t FROM STDIN" || notok "6. copy $t"
done
OLD="postgresql://castore@/old?host=$PGD"
rm -rf "$T_TMP/out-old"
"$CASTORE" --store "$STORE" --directory-service-addr "$OLD" --path-info-service-addr "$OLD" \
        export -v tree "$T_TMP/out-old" 2>"$T_TMP/old.err" || notok "6. export from the version 1 database"
check "6. a version 1 database is migrated (log: $(grep -m1 -o 'schema migrated to version [0-9]*' "$T_TMP/old.err"))" \
        test "$(psql_q old 'SELECT version FROM castore_schema')" = 2
expect_eq "6. the migration indexed every stored directory's children" \
        "$(psql_q old 'SELECT count(*) FROM directory_edges')" "$(psql_q cas 'SELECT count(*) FROM directory_edges')"
check "6. the migrated database's tree exports equal" diff -r --no-dereference "$SRC" "$T_TMP/out-old"
# a fresh database opened by four processes at once
FRESH="postgresql://castore@/fresh?host=$PGD"
pids=()
for i in 1 2 3 4; do
        "$CASTORE" --store "$STORE" --directory-service-addr "$FRESH" --path-info-service-addr "$FRESH" \
                path-info --all >/dev/null 2>"$T_TMP/fresh$i.err" &
        pids+=($!)
done
rcs=""
for p in "${pids[@]}"; do rc=0; wait "$p" || rc=$?; rcs="$rcs$rc"; done
expect_eq "6. four processes opening a fresh database at once all succeed" "$rcs" 0000
expect_eq "6. ... and it has the schema once" "$(psql_q fresh 'SELECT count(*), max(version) FROM castore_schema')" "1|2"
# a newer schema is refused and left alone
psql_q new "CREATE TABLE castore_schema (version integer NOT NULL); INSERT INTO castore_schema VALUES (99)"
NEW="postgresql://castore@/new?host=$PGD"
rc=0
"$CASTORE" --store "$STORE" --directory-service-addr "$NEW" --path-info-service-addr "$NEW" ls >/dev/null \
        2>"$T_TMP/new.err" || rc=$?
expect_eq "6. a newer schema is refused (exit 1)" "$rc" 1
check "6. ... saying so ($(grep -m1 -o 'schema version 99.*' "$T_TMP/new.err"))" grep -q "schema version 99" "$T_TMP/new.err"
expect_eq "6. ... and left untouched" "$(psql_q new "SELECT count(*) FROM pg_tables WHERE tablename = 'directories'")" 0

# --- 7. refusals and the composition file ----------------------------------------------
rc=0
"$CASTORE" --store "$URL" ls >/dev/null 2>"$T_TMP/pgstore.err" || rc=$?
expect_eq "7. --store postgresql:// alone is refused (exit 1)" "$rc" 1
check "7. ... saying blobs cannot live there" grep -q "Blobs cannot live in PostgreSQL" "$T_TMP/pgstore.err"
no_secret "7. --store postgresql://" "$T_TMP/pgstore.err"
rc=0
cas gc >/dev/null 2>"$T_TMP/gc.err" || rc=$?
expect_eq "7. gc refuses a store with PostgreSQL directories" "$rc" 1
check "7. ... saying why" grep -q "PostgreSQL" "$T_TMP/gc.err"
rc=0
"$CASTORE" --store "$STORE" --directory-service-addr "postgresql://castore:$SECRET@/cas?host=$PGD&port=1" \
        --path-info-service-addr "$URL" ls >/dev/null 2>"$T_TMP/badport.err" || rc=$?
expect_eq "7. a wrong port fails (exit 1)" "$rc" 1
no_secret "7. wrong port" "$T_TMP/badport.err"
cat >"$T_TMP/comp.toml" <<EOF
[blobservices.root]
type = "local"
path = "$STORE"
[directoryservices.root]
type = "postgresql"
url = "$URL"
[pathinfoservices.root]
type = "postgresql"
url = "$URL"
EOF
expect_eq "7. a composition file with postgresql services" \
        "$("$CASTORE" --store-composition "$T_TMP/comp.toml" cat tree/deep/a/b/c/d/e/f 2>&1)" deep

# --- 8. object-store blobs, PostgreSQL directories and path infos ---------------------
OURL="postgresql://castore:$SECRET@/objs?host=$PGD"
OBJ=$T_TMP/objects
OST=$T_TMP/ostore # the named roots; its own blob and directory databases stay unused
OA=(--store "$OST" --blob-service-addr "objectstore+file://$OBJ?avg_chunk_size=65536"
    --directory-service-addr "$OURL" --path-info-service-addr "$OURL")
ocas() { "$CASTORE" "${OA[@]}" "$@"; }
ocat_eq() { ocas cat "$1" | cmp - "$2"; }
oexport_eq() { rm -rf "$T_TMP/oout" && ocas export "$1" "$T_TMP/oout" && diff -r --no-dereference "$2" "$T_TMP/oout"; }
expect_eq "8. import with object-store blobs and PostgreSQL directories: the local import's root" \
        "$(ocas import "$SRC" --name tree 2>"$T_TMP/oimport.err")" "$lout"
expect_eq "8. every directory is a row" "$(psql_q objs 'SELECT count(*) FROM directories')" \
        "$(find "$SRC" -type d | wc -l)"
expect_eq "8. the local store holds no blob" "$(find "$OST/blobs" -type f 2>/dev/null | wc -l)" 0
n=$(find "$OBJ/chunks" -type f | wc -l)
if [ "$n" -gt "$(find "$SRC" -type f -size +0 | sort -u | wc -l)" ]; then ok "8. the object store holds the chunks ($n)"
else notok "8. the object store holds the chunks ($n)"; fi
check "8. export equals the tree" oexport_eq tree "$SRC"
check "8. cat of the 3 MiB file (many chunks)" ocat_eq tree/random3m "$SRC/random3m"
check "8. verify" ocas verify
if [ $FUSE = 0 ]; then
        skip "8. FUSE mount" "$WHY_NO_FUSE"
else
        # confined: the object store written, the database reached
        check_mount_tree "8. mount over object-store blobs and PostgreSQL directories (confined)" \
                "$SRC" "$T_TMP/om" "$BASE" ocas
fi
rc=0
ocas gc >/dev/null 2>"$T_TMP/ogc.err" || rc=$?
expect_eq "8. gc refuses it (exit 1)" "$rc" 1
check "8. ... saying the blobs and directories are shared" grep -q "object store.*PostgreSQL" "$T_TMP/ogc.err"
rc=0
"$CASTORE" --store "$OURL" --blob-service-addr "objectstore+file://$OBJ" ls >/dev/null 2>"$T_TMP/opgstore.err" ||
        rc=$?
expect_eq "8. --store postgresql:// with object-store blobs is refused (exit 1)" "$rc" 1
check "8. ... saying the named roots need a local store" grep -q "named roots live in a local store" \
        "$T_TMP/opgstore.err"
cat >"$T_TMP/ocomp.toml" <<EOF
[blobservices.root]
type = "objectstore"
object_store_url = "file://$OBJ"
avg_chunk_size = 65536
[directoryservices.root]
type = "postgresql"
url = "$OURL"
[pathinfoservices.root]
type = "postgresql"
url = "$OURL"
EOF
expect_eq "8. a composition file with objectstore blobs and postgresql services" \
        "$("$CASTORE" --store-composition "$T_TMP/ocomp.toml" cat "$BASE/deep/a/b/c/d/e/f" 2>&1)" deep
no_secret "all logs" "$T_TMP"/*.err
