#!/bin/bash
# Naming trees and living with registrations: every spelling of a tree
# (root name, store path absolute and basename, b3: and hex digest, each
# with a sub path) with every command that takes one; digests printed as
# b3:; import over a root of other content; roots and rm (the closure
# rule); info's figures against du and b3sum; --json output parsed by
# Python (a non-UTF-8 name too); exit codes.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
STORE=$T_TMP/store
export CASTORE_STORE=$STORE
C() { "$CASTORE" "$@"; }
# rc CMD...: the exit status of CMD, its output dropped
rc() { "$@" >/dev/null 2>&1; echo $?; }
json_ok() { "$PY" -m json.tool >/dev/null; }
b3hex() { "$PY" -c 'import sys, base64; print(base64.b64decode(sys.argv[1][3:]).hex())' "$1"; }

# ---- a tree: every directory distinct, a repeated file, odd names ----
SRC=$T_TMP/src
mkdir -p "$SRC/sub/deeper" "$SRC/other"
printf 'hello\n' > "$SRC/a"
printf 'hello\n' > "$SRC/sub/copy-of-a"
printf 'inner file\n' > "$SRC/sub/f"
printf 'deep\n' > "$SRC/sub/deeper/g"
printf '#!/bin/sh\n' > "$SRC/other/run"; chmod 755 "$SRC/other/run"
head -c 300000 /dev/urandom > "$SRC/other/big"
ln -s a "$SRC/link"
printf 'latin-1 name\n' > "$SRC/$(printf 'caf\351')"
find "$SRC" -type d -exec chmod 0755 {} +

out=$(C import "$SRC" --name src 2>"$T_TMP/err") && ok "import" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "import"; exit 1; }
B3=$(echo "$out" | awk '{print $2}')
SP=$(echo "$out" | awk '{print $3}')
BASE=${SP#/nix/store/}
HEX=$(b3hex "$B3")
HEXU=$(echo "$HEX" | tr a-f A-F)
case $B3 in b3:*=) ok "import prints the digest as b3:" ;; *) notok "import prints the digest as b3: ($out)" ;; esac
case $SP in /nix/store/*-src) ok "import prints the store path" ;; *) notok "import prints the store path ($out)" ;; esac

# ---- 1. every spelling with every command ----
SPELLINGS=("src" "$SP" "$BASE" "$B3" "$HEX" "$HEXU")
for n in "${SPELLINGS[@]}"; do
        expect_eq "ls $n/sub" "$(C ls "$n/sub" 2>&1)" "$(printf 'copy-of-a\ndeeper/\nf')"
        expect_eq "cat $n/sub/f" "$(C cat "$n/sub/f" 2>&1)" "inner file"
        got=$(C stat "$n/sub/deeper/g" 2>&1 | awk '/^digest:/ {print $2}')
        expect_eq "stat $n/sub/deeper/g" "$(b3hex "$got")" "$(b3sum --no-names "$SRC/sub/deeper/g")"
        rm -rf "$T_TMP/x"
        C export "$n/sub" "$T_TMP/x" 2>"$T_TMP/err" && diff -r --no-dereference "$SRC/sub" "$T_TMP/x" >"$T_TMP/err" 2>&1 &&
                ok "export $n/sub" || { sed 's/^/# /' "$T_TMP/err"; notok "export $n/sub"; }
        expect_eq "nar hash $n" "$(C nar hash "$n" 2>&1)" "$(C nar hash "$SP")"
        expect_eq "nar dump $n/sub" "$(C nar dump "$n/sub" | sha256sum)" "$(C nar dump "$SP/sub" | sha256sum)"
        expect_eq "path-info $n" "$(C path-info "$n" 2>&1 | awk '/^StorePath:/ {print $2}')" "$SP"
done
if have nix-store; then
        expect_eq "nar dump by root name is nix-store --dump" "$(C nar dump src | sha256sum)" \
                "$(nix-store --dump "$SRC" | sha256sum)"
else
        skip "nar dump against nix-store --dump" "nix-store is not installed"
fi
# a tree without a store path still has a NAR, named by root and digest
printf 'x' > "$T_TMP/plain-file"
mkdir "$T_TMP/plain"; cp "$SRC/a" "$T_TMP/plain/"
out=$(C import --no-nix "$T_TMP/plain" --name plain 2>&1)
PB3=$(echo "$out" | awk '{print $2}')
check "nar hash of a root without a store path" C nar hash plain
expect_eq "nar dump by digest = by root name" "$(C nar dump "$PB3" | sha256sum)" "$(C nar dump plain | sha256sum)"
expect_eq "path-info of a tree without a store path fails (1)" "$(rc C path-info plain)" 1
expect_eq "a file's digest is not a directory name (1)" \
        "$(rc C ls "b3:$("$PY" -c 'import sys,base64;print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' \
        "$(b3sum --no-names "$SRC/a")")")" 1
C ls nonexistent 2>"$T_TMP/err"; r=$?
expect_eq "an unknown name fails (1)" "$r" 1
grep -q 'No root, store path or directory named "nonexistent"' "$T_TMP/err" && ok "an unknown name is reported" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "an unknown name is reported"; }
expect_eq "a missing entry fails (1)" "$(rc C cat src/sub/nope)" 1
expect_eq "cat of a symlink fails (1)" "$(rc C cat src/link)" 1

# ---- 2. one digest spelling in output ----
outputs=$(C ls -lR src; C stat src src/a; C roots; C roots --json; C path-info "$SP"; C path-info --json "$SP"
          C ls --json -R src; C stat --json src/a; C import "$SRC" --name src; C import --json "$SRC" --name src)
if grep -qiE '(^|[^0-9a-z/+])[0-9a-f]{64}([^0-9a-z]|$)' <<<"$outputs"; then
        grep -iE '[0-9a-f]{64}' <<<"$outputs" | head -3 | sed 's/^/# /'; notok "no hex digest in any output"
else ok "no hex digest in any output"; fi
expect_eq "digests in output are b3:" "$(grep -o 'b3:[A-Za-z0-9+/]*=' <<<"$outputs" | sort -u | grep -c "^$B3$")" 1

# ---- 3. import over a root of other content ----
cp -a "$SRC" "$T_TMP/src2"
check "import of the same content under the same name" C import "$SRC" --name src
printf 'changed\n' > "$T_TMP/src2/a"
C import "$T_TMP/src2" --name src >"$T_TMP/out" 2>"$T_TMP/err"; r=$?
expect_eq "import of other content under an existing name fails (1)" "$r" 1
grep -q 'already exists with other content' "$T_TMP/err" && grep -q -- '--force' "$T_TMP/err" &&
        ok "the refusal says why and how" || { sed 's/^/# /' "$T_TMP/err"; notok "the refusal says why and how"; }
expect_eq "the root is unchanged" "$(C stat src | awk '/^digest:/ {print $2}')" "$B3"
check "import --force replaces it" C import --force "$T_TMP/src2" --name src
NEWB3=$(C stat src | awk '/^digest:/ {print $2}')
[ "$NEWB3" != "$B3" ] && ok "the root has the new content" || notok "the root has the new content"
C import --force "$SRC" --name src >/dev/null 2>&1 # back to the original

# ---- 4. roots and rm ----
C roots > "$T_TMP/roots"
awk -v b="$B3" '$1 == "root" && $2 == "dir" && $4 == "-" && $5 == b && $6 == "src" {f = 1} END {exit !f}' "$T_TMP/roots" && ok "roots lists the named root" ||
        { sed 's/^/# /' "$T_TMP/roots"; notok "roots lists the named root"; }
narsize=$(C nar hash --size "$SP" | tail -1)
awk -v b="$B3" -v n="$narsize" -v p="$SP" '$1 == "path" && $4 == n && $5 == b && $6 == p {f = 1} END {exit !f}' \
        "$T_TMP/roots" && ok "roots lists the store path with its NAR size" ||
        { sed 's/^/# /' "$T_TMP/roots"; notok "roots lists the store path with its NAR size"; }
C roots --json > "$T_TMP/roots.json"
if json_ok < "$T_TMP/roots.json" && "$PY" - "$T_TMP/roots.json" "$SP" "$B3" "$narsize" <<'EOF'
import json, sys
rs = json.load(open(sys.argv[1]))
sp = [r for r in rs if r["type"] == "storePath" and r["name"] == sys.argv[2]]
rt = [r for r in rs if r["type"] == "root" and r["name"] == "src"]
assert len(sp) == 1 and len(rt) == 1, rs
assert sp[0]["narSize"] == int(sys.argv[4]) and sp[0]["digest"] == sys.argv[3] and rt[0]["digest"] == sys.argv[3]
assert rt[0]["kind"] == "directory" and "entries" in rt[0]
EOF
then ok "roots --json"; else notok "roots --json"; fi

# a store path another one refers to: the reference is added to the
# record through liblmdb (castore has no command that registers one)
mkdir "$T_TMP/user"; printf 'uses src\n' > "$T_TMP/user/f"
USP=$(C import "$T_TMP/user" --name user | awk '{print $3}')
cat > "$T_TMP/addref.py" <<'EOF'
import ctypes, sys
meta, user, ref = sys.argv[1:4]
A = "0123456789abcdfghijklmnpqrsvwxyz"
def digest(p):
    n = 0
    for c in p.split("/")[-1][:32]:
        n = n * 32 + A.index(c)
    return n.to_bytes(20, "little")
lib = ctypes.CDLL("liblmdb.so.0")
class Val(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.c_void_p)]
def chk(rc):
    if rc:
        sys.exit("lmdb error %d" % rc)
env, txn, dbi = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_uint()
chk(lib.mdb_env_create(ctypes.byref(env)))
chk(lib.mdb_env_set_maxdbs(env, 16))
chk(lib.mdb_env_set_mapsize(env, ctypes.c_size_t(1 << 40)))
chk(lib.mdb_env_open(env, meta.encode(), 0, 0o644))
chk(lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn)))
chk(lib.mdb_dbi_open(txn, b"pathinfo", 0, ctypes.byref(dbi)))
kb = ctypes.create_string_buffer(digest(user), 20)
key, v = Val(20, ctypes.cast(kb, ctypes.c_void_p)), Val()
chk(lib.mdb_get(txn, dbi, ctypes.byref(key), ctypes.byref(v)))
rec = ctypes.string_at(v.data, v.size)
# references (field 2) and narinfo.reference_names (field 3 > field 4):
# a second narinfo occurrence is merged into the first by decoders
name = ref.split("/")[-1].encode()
ni = b"\x22" + bytes([len(name)]) + name
rec += b"\x12\x14" + digest(ref) + b"\x1a" + bytes([len(ni)]) + ni
vb = ctypes.create_string_buffer(rec, len(rec))
nv = Val(len(rec), ctypes.cast(vb, ctypes.c_void_p))
chk(lib.mdb_put(txn, dbi, ctypes.byref(key), ctypes.byref(nv), 0))
chk(lib.mdb_txn_commit(txn))
EOF
if "$PY" "$T_TMP/addref.py" "$STORE/meta" "$USP" "$SP" 2>"$T_TMP/err" &&
        C path-info "$USP" | grep -q "^References: $BASE$"; then
        ok "a reference from $USP to $SP"
        C rm "$SP" 2>"$T_TMP/err"; r=$?
        expect_eq "rm of a referenced store path fails (1)" "$r" 1
        grep -q "$SP is referenced by $USP" "$T_TMP/err" && ok "the refusal names the referrer" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "the refusal names the referrer"; }
        check "the referenced store path is still registered" C path-info "$SP"
        check "rm of the referrer and the referenced together" C rm "$SP" "$USP"
        expect_eq "both are gone" "$(rc C path-info "$SP"; rc C path-info "$USP")" "$(printf '1\n1')"
        C import --force "$T_TMP/user" --name user >/dev/null 2>&1
        C import --force "$SRC" --name src >/dev/null 2>&1
        "$PY" "$T_TMP/addref.py" "$STORE/meta" "$USP" "$SP"
        expect_eq "rm of a referenced store path fails again (1)" "$(rc C rm "$SP")" 1
        check "rm --force removes it all the same" C rm --force "$SP"
        expect_eq "it is gone" "$(rc C path-info "$SP")" 1
        check "the referrer stays" C path-info "$USP"
        C import --force "$SRC" --name src >/dev/null 2>&1
else
        sed 's/^/# /' "$T_TMP/err"; notok "a reference from $USP to $SP"
fi
check "rm of a root" C rm user
expect_eq "the root is gone" "$(rc C ls user)" 1
check "its store path stays" C ls "$USP"
check "rm of a store path by its basename" C rm "${USP#/nix/store/}"
expect_eq "the store path is gone" "$(rc C path-info "$USP")" 1
check "the tree stays (rm removes registrations only)" C ls "$(C roots | awk '$NF == "src" {print $5}')"
expect_eq "rm of an unknown name fails (1)" "$(rc C rm src nonexistent)" 1
check "and removes nothing" C ls src
expect_eq "rm of a digest fails (1)" "$(rc C rm "$B3")" 1
expect_eq "rm of a path inside a tree is a usage error (2)" "$(rc C rm src/sub)" 2
expect_eq "rm of a path inside a store path is a usage error (2)" "$(rc C rm "$SP/sub")" 2
expect_eq "rm without arguments is a usage error (2)" "$(rc C rm)" 2

# ---- 5. info against du and b3sum ----
# a store of its own, with two trees that share content
IS=$T_TMP/istore
T2=$T_TMP/tree2
mkdir -p "$T2/x"; cp "$SRC/a" "$T2/x/same-as-a"; cp "$SRC/other/big" "$T2/x/big-copy"
printf 'only in tree2\n' > "$T2/x/own"
CASTORE_STORE=$IS C import "$SRC" --name one >/dev/null 2>&1
CASTORE_STORE=$IS C import "$T2" --name two >/dev/null 2>&1
CASTORE_STORE=$IS C info --json > "$T_TMP/info.json" 2>"$T_TMP/err" && ok "info --json" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "info --json"; }
json_ok < "$T_TMP/info.json" && ok "info --json is JSON" || notok "info --json is JSON"
# (in the C locale: bash's read would take the byte \351 and the delimiter
# after it for one character)
(export LC_ALL=C; find "$SRC" "$T2" -type f -print0 | while IFS= read -r -d '' f; do
        echo "$(b3sum --no-names "$f") $(stat -c %s "$f")"
done | sort -u) > "$T_TMP/contents"
blobs=$(wc -l < "$T_TMP/contents")
blob_bytes=$(awk '{s += $2} END {print s}' "$T_TMP/contents")
tree_bytes=$(find "$SRC" "$T2" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
# loose files take their blocks, packed blobs their length and outboard (the packs' bytes)
disk=$(( $(find "$IS/blobs" -path "$IS/blobs/packs" -prune -o -type f -printf '%b\n' | awk '{s += $1 * 512} END {print s + 0}') + \
        $(find "$IS/blobs" -name '*.pack' -printf '%s\n' | awk '{s += $1} END {print s + 0}') ))
dirs=$(find "$SRC" "$T2" -type d | wc -l)
"$PY" - "$T_TMP/info.json" "$blobs" "$blob_bytes" "$disk" "$dirs" "$tree_bytes" "$IS" > "$T_TMP/cmp" <<'EOF'
import json, os, sys
i = json.load(open(sys.argv[1]))
blobs, blob_bytes, disk, dirs, tree_bytes = map(int, sys.argv[2:7])
def eq(what, got, want):
    print(("ok - " if got == want else "not ok - ") + "info: %s (%s, want %s)" % (what, got, want))
eq("blob count = distinct b3sums", i["blobs"]["count"], blobs)
eq("blob bytes = sizes of distinct contents", i["blobs"]["bytes"], blob_bytes)
eq("bytes on disk = allocated blocks of blob files and outboards", i["blobs"]["diskBytes"], disk)
eq("directory count = directories of the trees (all distinct)", i["directories"]["count"], dirs)
eq("named roots", i["roots"]["count"], 2)
eq("store paths", i["storePaths"]["count"], 2)
eq("trees", i["trees"]["count"], 2)
eq("file bytes of the trees", i["trees"]["fileBytes"], tree_bytes)
eq("dedup ratio", round(i["dedupRatio"], 3), round(tree_bytes / blob_bytes, 3))
eq("store location", i["store"], os.path.realpath(sys.argv[7]))
EOF
while read -r line; do
        case $line in "ok - "*) ok "${line#ok - }" ;; *) notok "${line#not ok - }" ;; esac
done < "$T_TMP/cmp"
[ -s "$T_TMP/cmp" ] || notok "info figures compared"
check "info (text)" sh -c "CASTORE_STORE='$IS' '$CASTORE' info | grep -q '^dedup ratio:'"

# ---- 6. --json, a non-UTF-8 name included ----
for cmd in "ls --json src" "ls --json -R src" "ls --json" "ls --json -l src/a" "stat --json src src/sub src/link" \
           "roots --json" "info --json" "path-info --json src"; do
        # shellcheck disable=SC2086
        C $cmd > "$T_TMP/j" 2>"$T_TMP/err" && json_ok < "$T_TMP/j" && ok "$cmd: valid JSON" ||
                { sed 's/^/# /' "$T_TMP/err" "$T_TMP/j" | head -5; notok "$cmd: valid JSON"; }
done
C ls --json -R src > "$T_TMP/j"
"$PY" - "$T_TMP/j" <<'EOF' && ok "a non-UTF-8 name survives the JSON round trip" || notok "a non-UTF-8 name survives the JSON round trip"
import json, os, sys
names = [os.fsencode(e["path"]) for e in json.load(open(sys.argv[1]))]
assert b"caf\xe9" in names, names
EOF
C stat --json "src/$(printf 'caf\351')" > "$T_TMP/j" && json_ok < "$T_TMP/j" && ok "stat --json of a non-UTF-8 path" ||
        notok "stat --json of a non-UTF-8 path"

# ---- 7. exit codes: 2 for usage errors only ----
for cmd in "ls --bogus" "ls a b" "stat" "stat --bogus src" "cat" "export src" "nar" "nar dump" "nar frob x" \
           "path-info" "path-info --all src" "roots extra" "roots --bogus" "rm" "rm --bogus src" "info extra" \
           "info --bogus" "import" "import --name a/b $SRC" "nonexistent-command" "ls /usr/bin" "nar dump /usr/bin" \
           "cat src/../a"; do
        # shellcheck disable=SC2086
        expect_eq "castore $cmd: exit 2" "$(rc C $cmd)" 2
done
expect_eq "castore stat '': exit 2" "$(rc C stat '')" 2
for cmd in "ls nonexistent" "stat src/nonexistent" "cat src" "nar hash nonexistent" "path-info nonexistent" \
           "export src $SRC"; do
        # shellcheck disable=SC2086
        expect_eq "castore $cmd: exit 1" "$(rc C $cmd)" 1
done
for c in roots rm info; do
        "$CASTORE" $c --help | grep -q "^Usage: castore .* $c " && ok "castore $c --help" || notok "castore $c --help"
        "$CASTORE" help | grep -q "^  $c " && ok "castore help lists $c" || notok "castore help lists $c"
done
"$CASTORE" rm --help | grep -q "garbage collection" && ok "rm --help says blobs stay until garbage collection" ||
        notok "rm --help says blobs stay until garbage collection"
