#!/bin/bash
# The Nix layer against real Nix: for several trees, "castore nar dump"
# equals "nix-store --dump" byte for byte, "castore nar import" of that NAR
# prints the store path "nix-store --add" prints and round-trips, "castore
# nar hash" and "path-info --json" agree with Nix; hostile NARs are each
# rejected with their own error and register nothing.
. "$(dirname "$0")/lib.sh"

if ! have nix-store; then
        skip "nix layer against real Nix" "nix-store is not installed (scripts/deps.sh test installs nix-bin)"
        exit 0
fi

nix_offline

export CASTORE_STORE=$T_TMP/store
C() { "$CASTORE" "$@"; }

# ---- trees ----
TREES=$T_TMP/trees
mkdir -p "$TREES"
t=$TREES/tree
mkdir -p "$t/empty-dir" "$t/nested/a/b/c" "$t/Upper" "$t/sub.d"
printf 'Hello World!' > "$t/hello"
: > "$t/empty-file"
printf '#!/bin/sh\necho hi\n' > "$t/script"; chmod 0755 "$t/script"
printf 'same' > "$t/nested/a/b/c/leaf"; printf 'same' > "$t/nested/copy"
ln -s hello "$t/rel-link"
ln -s /nix/store/somewhereelse "$t/abs-link"
ln -s does-not-exist "$t/dangling"
ln -s ../../.. "$t/nested/a/up"
touch "$t/$(printf 'non-utf8-\377\376')" "$t/$(printf 'caf\303\251')" "$t/a-b" "$t/a.b" "$t/a_b" "$t/A"
# padding edge cases: contents of 7, 8 and 9 bytes
printf '1234567' > "$t/p7"; printf '12345678' > "$t/p8"; printf '123456789' > "$t/p9"
# larger than the renderer's in-memory limit (verified, then streamed)
head -c 3000000 /dev/urandom > "$t/large"
mkdir -p "$TREES/empty"
printf 'just a file\n' > "$TREES/single"
printf '#!/bin/sh\n' > "$TREES/single-exec"; chmod 0755 "$TREES/single-exec"
ln -s /nix/store/somewhereelse "$TREES/single-link"
mkdir -p "$TREES/.dot"; printf 'x' > "$TREES/.dot/f"
# unusual: an empty executable file, a symlink target of 4095 bytes (the
# most a target may have), a 255-byte name, names of bytes >= 0x80 only,
# 300 levels of nesting, and a file past the renderer's 8 MiB in-memory
# limit (verified in full, then streamed)
u=$TREES/unusual
mkdir -p "$u"
: > "$u/empty-exec"; chmod 0755 "$u/empty-exec"
ln -s "$(python3 -c 'print("a/" * 2047 + "b", end="")')" "$u/long-target"
touch "$u/$(python3 -c 'print("n" * 255, end="")')" "$u/$(printf '\200\377')" "$u/$(printf '\377\200')"
python3 -c '
import os, sys
p = os.path.join(sys.argv[1], "deep")
for i in range(300): p = os.path.join(p, "d")
os.makedirs(p)
open(os.path.join(p, "bottom"), "w").write("x")' "$u"
head -c 9000001 /dev/urandom > "$u/big"
find "$TREES" -type d -exec chmod 0755 {} +

# name: the store path name nix-store --add gives (the basename)
for tree in tree empty single single-exec single-link .dot unusual; do
        src=$TREES/$tree
        nar=$T_TMP/$tree.nar
        if ! nixpath=$(nixs --add "$src" 2>"$T_TMP/err"); then
                sed 's/^/# /' "$T_TMP/err" | head -5
                notok "$tree: nix-store --add"
                continue
        fi
        nix-store --dump "$src" > "$nar"

        out=$(C nar import "$nar" --name "$tree" 2>"$T_TMP/err") || sed 's/^/# /' "$T_TMP/err" | head -5
        expect_eq "$tree: nar import prints the path nix-store --add prints" "$out" "$nixpath"

        C nar dump "$nixpath" > "$T_TMP/ours.nar" 2>"$T_TMP/err" || sed 's/^/# /' "$T_TMP/err" | head -5
        if cmp -s "$T_TMP/ours.nar" "$nar"; then ok "$tree: nar dump equals nix-store --dump ($(stat -c %s "$nar") bytes)"
        else cmp "$T_TMP/ours.nar" "$nar" 2>&1 | sed 's/^/# /'; notok "$tree: nar dump equals nix-store --dump"; fi
        # the basename form of STOREPATH works as well
        C nar dump "${nixpath#/nix/store/}" | cmp -s - "$nar" && ok "$tree: nar dump by basename" ||
                notok "$tree: nar dump by basename"

        hash=$(C nar hash --size "$nixpath" 2>"$T_TMP/err") || sed 's/^/# /' "$T_TMP/err" | head -5
        expect_eq "$tree: nar hash equals nix-store -q --hash" "$(echo "$hash" | head -1)" "$(nixs -q --hash "$nixpath")"
        expect_eq "$tree: nar hash --size equals nix-store -q --size" "$(echo "$hash" | sed -n 2p)" \
                "$(nixs -q --size "$nixpath")"

        # path-info --json: the fields Nix prints, same values
        ours=$(C path-info --json "$nixpath" 2>&1)
        theirs=$(nix path-info --store "$NIXROOT" --json "$nixpath" 2>&1)
        if python3 - "$ours" "$theirs" <<'EOF'
import json, sys
a, b = (json.loads(s) for s in sys.argv[1:3])
keys = ["path", "narHash", "narSize", "references", "ca"]
pa = [{k: x.get(k) for k in keys} for x in a]
pb = [{k: x.get(k) for k in keys} for x in b]
if pa != pb:
    print("# ours:  ", pa); print("# theirs:", pb); sys.exit(1)
EOF
        then ok "$tree: path-info --json agrees with nix path-info --json"
        else notok "$tree: path-info --json agrees with nix path-info --json"; fi

        # what we dump, Nix restores to the original tree
        rm -rf "$T_TMP/restored"
        if C nar dump "$nixpath" | nix-store --restore "$T_TMP/restored" 2>"$T_TMP/err" &&
                diff -r --no-dereference "$src" "$T_TMP/restored" >"$T_TMP/diff" 2>&1 &&
                [ "$(nix-store --dump "$T_TMP/restored" | sha256sum)" = "$(sha256sum < "$nar")" ]; then
                ok "$tree: nix-store --restore of our dump gives the tree back"
        else
                cat "$T_TMP/err" "$T_TMP/diff" | head -5 | sed 's/^/# /'
                notok "$tree: nix-store --restore of our dump gives the tree back"
        fi
done

# a sub path of a store path, as nix-store --dump of that sub path
p=$(nixs --add "$TREES/tree")
C nar dump "$p/nested/a" | cmp -s - <(nix-store --dump "$TREES/tree/nested/a") &&
        ok "nar dump of STOREPATH/sub/path" || notok "nar dump of STOREPATH/sub/path"

# import from stdin; re-import is idempotent
out=$(C nar import - --name tree < "$T_TMP/tree.nar")
expect_eq "nar import from stdin" "$out" "$p"

# ---- castore import registers the path nix-store --add gives (each tree) ----
if CASTORE_STORE=$T_TMP/store-probe "$CASTORE" import "$TREES/single" --name single 2>/dev/null | grep -q /nix/store/; then
        for tree in tree empty single single-exec single-link .dot unusual; do
                p=$(nixs --add "$TREES/$tree")
                out=$(CASTORE_STORE=$T_TMP/store-imp "$CASTORE" import "$TREES/$tree" --name "$tree" 2>&1)
                case $out in *" $p"*) ok "$tree: castore import registers the nix-store --add path" ;;
                        *) printf '# %s\n# want %s\n' "$out" "$p"; notok "$tree: castore import registers the nix-store --add path" ;; esac
                CASTORE_STORE=$T_TMP/store-imp "$CASTORE" nar dump "$p" | cmp -s - "$T_TMP/$tree.nar" &&
                        ok "$tree: nar dump of the imported tree equals nix-store --dump" ||
                        notok "$tree: nar dump of the imported tree equals nix-store --dump"
        done
        p=$(nixs --add "$TREES/tree")
else
        skip "castore import registers a store path" "castore import does not register PathInfos in this build"
fi

# ---- hostile NARs: each rejected with its error, nothing registered ----
H=$T_TMP/hostile
mkdir -p "$H"
python3 - "$H" <<'EOF'
import struct, sys, os
d = sys.argv[1]
def s(b):
    if isinstance(b, str): b = b.encode()
    return struct.pack("<Q", len(b)) + b + b"\0" * ((8 - len(b) % 8) % 8)
def toks(*t): return b"".join(s(x) for x in t)
def entry(name, node): return toks("entry", "(", "name") + s(name) + s("node") + node + s(")")
link = toks("(", "type", "symlink", "target", "x", ")")
reg = toks("(", "type", "regular", "contents", "hello", ")")
def dir_(*entries): return toks("(", "type", "directory") + b"".join(entries) + s(")")
good = s("nix-archive-1") + dir_(entry("a", reg), entry("b", link))
cases = {
    "truncated": good[:-12],
    "padding": good[:good.index(b"hello") + 5] + b"\0\1\0" + good[good.index(b"hello") + 8:],
    "unsorted": s("nix-archive-1") + dir_(entry("b", link), entry("a", reg)),
    "duplicate": s("nix-archive-1") + dir_(entry("a", reg), entry("a", link)),
    "dotdot": s("nix-archive-1") + dir_(entry("..", reg)),
    "slash": s("nix-archive-1") + dir_(entry("a/b", reg)),
    "oversized": s("nix-archive-1") + toks("(", "type", "directory", "entry", "(", "name") + struct.pack("<Q", 1 << 40),
    "huge-contents": s("nix-archive-1") + toks("(", "type", "regular", "contents") + struct.pack("<Q", (1 << 64) - 1) + b"x" * 64,
    "magic": s("nix-archive-0") + reg,
    "trailing": good + s("x"),
    "exec-value": s("nix-archive-1") + toks("(", "type", "regular", "executable", "yes", "contents", "", ")"),
    "exec-symlink": s("nix-archive-1") + toks("(", "type", "symlink", "executable", "", "target", "x", ")"),
    "type": s("nix-archive-1") + toks("(", "type", "fifo", ")"),
    "empty": b"",
}
open(os.path.join(d, "good"), "wb").write(good)
for k, v in cases.items():
    open(os.path.join(d, k), "wb").write(v)
EOF
n_before=$(C path-info --all | grep -c '^StorePath:')
reject() {  # case expected-message
        local err rc=0
        err=$(C nar import "$H/$1" --name hostile 2>&1 >/dev/null) || rc=$?
        if [ $rc -eq 1 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && [[ $err == *"$2"* ]]; then
                ok "hostile NAR rejected: $1 ($err)"
        else
                printf '# exit %s: %s\n' "$rc" "$err" | head -5
                notok "hostile NAR rejected: $1"
        fi
}
reject truncated "truncated NAR"
reject padding "non-zero padding"
reject unsorted "not in ascending order"
reject duplicate "duplicate entry name"
reject dotdot "invalid entry name"
reject slash "invalid entry name"
reject oversized "longer than 255"
reject huge-contents "truncated NAR"
reject magic "bad magic"
reject trailing "trailing data"
reject exec-value "non-empty value"
reject exec-symlink "expected \"target\""
reject type "unknown node type"
reject empty "truncated NAR"
expect_eq "hostile NARs registered nothing" "$(C path-info --all | grep -c '^StorePath:')" "$n_before"
out=$(C nar import "$H/good" --name hostile 2>&1) && [[ $out == /nix/store/*-hostile ]] &&
        ok "the valid NAR they were made from imports" || { echo "# $out"; notok "the valid NAR they were made from imports"; }

# ---- a mount shows store paths at its root, like /nix/store ----
if [ -c /dev/fuse ]; then
        MNT=$T_TMP/mnt; mkdir -p "$MNT"
        treepath=$(C import "$TREES/tree" | awk '{print $3}')
        base=${treepath#/nix/store/}
        if C mount --daemon "$MNT" 2>"$T_TMP/err"; then
                at_exit "'$CASTORE' umount '$MNT'"
                check "mount: a store path basename resolves" diff -r --no-dereference "$TREES/tree" "$MNT/$base"
                check "mount: its NAR equals nix-store --dump of the source" \
                        cmp <(nix-store --dump "$MNT/$base") <(nix-store --dump "$TREES/tree")
                [ ! -e "$MNT/${base%-*}-other" ] && ok "mount: the right hash with another name is ENOENT" ||
                        notok "mount: the right hash with another name is ENOENT"
                [ ! -e "$MNT/${base:0:31}-tree" ] && [ ! -e "$MNT/not-a-store-path" ] &&
                        ok "mount: names that are not store path basenames are ENOENT" ||
                        notok "mount: names that are not store path basenames are ENOENT"
                mkdir -p "$TREES/late"; echo late > "$TREES/late/f"
                late=$(C import "$TREES/late" | awk '{print $3}')
                expect_eq "mount: a path imported after mounting appears" "$(cat "$MNT/${late#/nix/store/}/f" 2>&1)" late
                # castore umount returns when the mount is gone, before its
                # daemon has exited; the daemon unmounts its mountpoint by
                # path on the way out, which would take a new mount there
                # with it: wait for the daemon first
                nixd=$(pgrep -f -- " mount .*$MNT\$" | head -1)
                C umount "$MNT"
                [ -n "$nixd" ] && wait_until 10 pid_gone "$nixd" || notok "mount: the daemon exits after castore umount"
                C mount --daemon --list-root "$MNT" || notok "mount --list-root"
                want=$(C path-info --all --json | python3 -c '
import json, sys
print("\n".join(sorted(p["path"][len("/nix/store/"):] for p in json.load(sys.stdin))))')
                got=$(ls "$MNT" | LC_ALL=C sort | grep -E '^[0-9a-z]{32}-')
                expect_eq "mount --list-root: lists every registered store path" "$got" "$want"
                C umount "$MNT"
        else
                sed 's/^/# /' "$T_TMP/err"; notok "mount of the store"
        fi
else
        skip "store paths at the mount root" "/dev/fuse is missing"
fi

# ---- verify: a sound store passes, every kind of damage is reported ----
V=$T_TMP/verify
mkdir -p "$V/tree/sub/inner"
printf 'hello' > "$V/tree/sub/inner/f"; printf 'top' > "$V/tree/top"; ln -s top "$V/tree/link"
printf 'a file root' > "$V/file"
# Record surgery through liblmdb itself: what a corrupt or lost record
# looks like to castore.  lmdb META DB keys | get KEY | del KEY | put KEY VAL
cat > "$V/lmdb.py" <<'EOF'
import ctypes, sys
lib = ctypes.CDLL("liblmdb.so.0")
class Val(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("data", ctypes.c_void_p)]
def chk(rc):
    if rc:
        lib.mdb_strerror.restype = ctypes.c_char_p
        sys.exit("lmdb: %s" % lib.mdb_strerror(rc).decode())
def val(b):
    buf = ctypes.create_string_buffer(b, len(b))
    return Val(len(b), ctypes.cast(buf, ctypes.c_void_p)), buf
meta, db, op = sys.argv[1:4]
env, txn, dbi = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_uint()
chk(lib.mdb_env_create(ctypes.byref(env)))
chk(lib.mdb_env_set_maxdbs(env, 16))
chk(lib.mdb_env_set_mapsize(env, ctypes.c_size_t(1 << 40)))
chk(lib.mdb_env_open(env, meta.encode(), 0, 0o644))
chk(lib.mdb_txn_begin(env, None, 0, ctypes.byref(txn)))
chk(lib.mdb_dbi_open(txn, db.encode(), 0, ctypes.byref(dbi)))
if op == "keys":
    cur, k, v = ctypes.c_void_p(), Val(), Val()
    chk(lib.mdb_cursor_open(txn, dbi, ctypes.byref(cur)))
    rc = lib.mdb_cursor_get(cur, ctypes.byref(k), ctypes.byref(v), 0)  # MDB_FIRST
    while rc == 0:
        print(ctypes.string_at(k.data, k.size).hex())
        rc = lib.mdb_cursor_get(cur, ctypes.byref(k), ctypes.byref(v), 8)  # MDB_NEXT
    lib.mdb_cursor_close(cur)
else:
    key, kb = val(bytes.fromhex(sys.argv[4]))
    if op == "get":
        v = Val()
        chk(lib.mdb_get(txn, dbi, ctypes.byref(key), ctypes.byref(v)))
        print(ctypes.string_at(v.data, v.size).hex())
    elif op == "del":
        chk(lib.mdb_del(txn, dbi, ctypes.byref(key), None))
    elif op == "put":
        v, vb = val(bytes.fromhex(sys.argv[5]))
        chk(lib.mdb_put(txn, dbi, ctypes.byref(key), ctypes.byref(v), 0))
chk(lib.mdb_txn_commit(txn))
lib.mdb_env_close(env)
EOF
lmdb() { python3 "$V/lmdb.py" meta "$@"; }
b3hex() { python3 -c 'import sys, base64; print(base64.b64decode(sys.argv[1][3:]).hex())' "$1"; }
# the 20-byte digest of a store path, hex
sphex() { python3 -c '
import sys
a = "0123456789abcdfghijklmnpqrsvwxyz"; s = sys.argv[1].split("/")[-1][:32]; n = 0
for c in s: n = n * 32 + a.index(c)
print(n.to_bytes(20, "little").hex())' "$1"; }
# flips one bit of the byte at offset (hex digits 2*off..) of a hex string
flip() { python3 -c 'import sys; b = bytearray.fromhex(sys.argv[1]); b[int(sys.argv[2])] ^= 1; print(b.hex())' "$1" "$2"; }

VS=$V/pristine
# loose blobs (--no-pack): the cases below remove and damage blob files
out=$(CASTORE_STORE=$VS C import "$V/tree" --name v --no-pack 2>&1)
vroot=$(b3hex "$(echo "$out" | awk '{print $2}')"); vpath=$(echo "$out" | awk '{print $3}')
vfile=$(CASTORE_STORE=$VS C import "$V/file" --name vf --no-pack 2>&1 | awk '{print $3}')
lsd() { CASTORE_STORE=$VS C ls -l "$1" | awk -v n="$2" '$NF == n && $3 ~ /^b3:/ {print $3}'; }
vsub=$(b3hex "$(lsd v sub)"); vinner=$(b3hex "$(lsd v/sub inner)")
vtop=$(b3hex "$(lsd v top)"); vf=$(b3hex "$(lsd v/sub/inner f)")
vfileblob=$(b3hex "$(CASTORE_STORE=$VS C ls -l vf | awk '{print $3}')")
blobf() { echo "blobs/${1:0:2}/$1"; }
if [ -z "$vroot" ] || [ -z "$vsub" ] || [ -z "$vinner" ] || [ -z "$vtop" ] || [ -z "$vf" ] || [ -z "$vfile" ]; then
        printf '# %s\n' "$out"; notok "verify: set up the store to damage"
fi
out=$(CASTORE_STORE=$VS C verify 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$(echo "$out" | grep -vc 'checked .* 0 problems')" -eq 0 ] &&
        [[ $out == *"checked 3 blobs, 3 directories, 2 roots, 2 store paths: 0 problems"* ]] &&
        ok "verify passes a sound store (blobs, directories, roots, store paths)" ||
        { printf '# %s\n' "$out"; notok "verify passes a sound store"; }
CASTORE_STORE=$VS C verify --nar >/dev/null 2>&1 && ok "verify --nar passes a sound store" ||
        notok "verify --nar passes a sound store"

# vcase NAME EXPECTED-LINE SHELL-CODE: damages a copy of the store (in its
# directory), then verify must exit 1 and print the expected line.
vcase() {
        local name=$1 want=$2 rc=0
        rm -rf "$V/s"; cp -a "$VS" "$V/s"
        if ! (cd "$V/s" && eval "$3"); then notok "verify reports $name (could not damage the store)"; return; fi
        CASTORE_STORE=$V/s C verify ${VERIFY_ARGS-} >"$V/out" 2>&1 || rc=$?
        if [ $rc -eq 1 ] && grep -qF -- "$want" "$V/out"; then ok "verify reports $name"
        else sed 's/^/# /' "$V/out" | head -8; notok "verify reports $name (exit $rc, want \"$want\")"; fi
}
vcase "a flipped blob byte" "corrupt blob" \
        'f=$(blobf $vtop); chmod u+w $f; printf X | dd of=$f bs=1 seek=1 conv=notrunc status=none'
vcase "a truncated blob" "corrupt blob" 'f=$(blobf $vtop); chmod u+w $f; truncate -s 2 $f'
vcase "a blob with a byte appended" "corrupt blob" 'f=$(blobf $vtop); chmod u+w $f; printf x >> $f'
vcase "a missing blob" "missing blob $(python3 -c 'import sys,base64;print("b3:"+base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$vf")" \
        'rm $(blobf $vf)'
vcase "a flipped byte in a directory record" "corrupt directory" \
        'lmdb directories put $vsub $(flip $(lmdb directories get $vsub) 12)'
vcase "a directory record under another digest" "content hashes to" \
        'lmdb directories put $vsub $(lmdb directories get $vinner)'
vcase "a missing child directory" 'entry "inner" of directory' 'lmdb directories del $vinner'
vcase "a wrong stored directory size" "stored size 9" \
        'v=$(lmdb directories get $vsub); lmdb directories put $vsub 09${v:2}'
vcase "a non-canonical directory record" "not canonical" \
        'lmdb directories put $vinner $(lmdb directories get $vinner)2000'
vcase "a malformed directory record" "corrupt records in the directory database" \
        'lmdb directories put 00 00'
vcase "a store path whose root directory is missing" "(store path $vpath)" 'lmdb directories del $vroot'
vcase "a store path whose file is missing" "(store path $vfile)" 'rm $(blobf $vfileblob)'
vcase "a corrupt PathInfo record" "corrupt records in the store path database" \
        'lmdb pathinfo put $(sphex $vpath) ffff'
vcase "a PathInfo stored under another digest" "corrupt records in the store path database" \
        'lmdb pathinfo put $(sphex $vfile) $(lmdb pathinfo get $(sphex $vpath))'
vcase "a corrupt named root record" "corrupt records in the named root database" \
        'lmdb roots put $(printf v | xxd -p) 0a'
# a reference to a store path that is not registered (Nix's closure rule):
# a second narinfo occurrence is merged into the first by decoders
missing=/nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing
vcase "a reference to a missing store path" "missing store path $missing (referenced by $vpath)" \
        'lmdb pathinfo put $(sphex $vpath) $(lmdb pathinfo get $(sphex $vpath))$(python3 -c "
import sys
d, n = bytes.fromhex(sys.argv[1]), sys.argv[2].split(\"/\")[-1].encode()
ni = b\"\\x22\" + bytes([len(n)]) + n
print((b\"\\x12\\x14\" + d + b\"\\x1a\" + bytes([len(ni)]) + ni).hex())" $(sphex $missing) $missing)'
VERIFY_ARGS=--nar vcase "a PathInfo whose NAR hash is wrong (--nar)" "its NAR differs" \
        'v=$(lmdb pathinfo get $(sphex $vfile)); sha=$(nix-store --dump "$V/file" | sha256sum | cut -c1-64)
         lmdb pathinfo put $(sphex $vfile) $(python3 -c "import sys; print(sys.argv[1].replace(sys.argv[2], sys.argv[2][:-1] + \"0\", 1))" $v $sha)'
# a blob that rotted in place: verify --repair removes it, a re-import
# stores it again
rm -rf "$V/s"; cp -a "$VS" "$V/s"
f=$V/s/$(blobf $vtop); chmod u+w "$f"; printf X | dd of="$f" bs=1 seek=1 conv=notrunc status=none
CASTORE_STORE=$V/s C import "$V/tree" --name v >/dev/null 2>&1
CASTORE_STORE=$V/s C verify >/dev/null 2>&1 && notok "a re-import alone cannot repair a rotted blob" ||
        ok "a re-import alone cannot repair a rotted blob (same size: found in place)"
rc=0; CASTORE_STORE=$V/s C verify --repair >"$V/out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q "^removed corrupt blob" "$V/out" && [ ! -e "$f" ] && ok "verify --repair removes a corrupt blob" ||
        { sed 's/^/# /' "$V/out" | head -5; notok "verify --repair removes a corrupt blob (exit $rc)"; }
CASTORE_STORE=$V/s C verify >"$V/out" 2>&1; grep -q "missing blob" "$V/out" && ok "then verify reports it missing" ||
        { sed 's/^/# /' "$V/out" | head -5; notok "then verify reports it missing"; }
CASTORE_STORE=$V/s C import "$V/tree" --name v >/dev/null 2>&1
CASTORE_STORE=$V/s C verify >"$V/out" 2>&1 && ok "and a re-import repairs it" ||
        { sed 's/^/# /' "$V/out" | head -5; notok "and a re-import repairs it"; }
# a re-import repairs a damaged directory record
rm -rf "$V/s"; cp -a "$VS" "$V/s"
(cd "$V/s" && lmdb directories put $vsub $(flip $(lmdb directories get $vsub) 12))
CASTORE_STORE=$V/s C import "$V/tree" --name v >/dev/null 2>&1
CASTORE_STORE=$V/s C verify >"$V/out" 2>&1 && ok "a re-import repairs a damaged directory record" ||
        { sed 's/^/# /' "$V/out" | head -5; notok "a re-import repairs a damaged directory record"; }

# ---- bad arguments: one-line error, non-zero exit ----
bad() {  # name expected-exit cmd...
        local name=$1 want=$2 err rc=0
        shift 2
        err=$("$@" 2>&1 >/dev/null) || rc=$?
        if [ $rc -eq "$want" ] && [ "$(echo "$err" | wc -l)" -eq 1 ]; then ok "bad input: $name"
        else printf '# exit %s: %s\n' "$rc" "$err" | head -5; notok "bad input: $name"; fi
}
bad "nar dump of a non-store path" 2 "$CASTORE" nar dump /usr/bin
bad "nar dump of a missing path" 1 "$CASTORE" nar dump /nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing
bad "nar dump of a missing sub path" 1 "$CASTORE" nar dump "$p/nope"
bad "nar hash without argument" 2 "$CASTORE" nar hash
bad "nar with an unknown subcommand" 2 "$CASTORE" nar frobnicate
bad "nar import without --name" 2 "$CASTORE" nar import "$H/good"
bad "nar import with a bad name" 2 "$CASTORE" nar import "$H/good" --name 'a b'
bad "nar import of a missing file" 1 "$CASTORE" nar import "$T_TMP/nope" --name x
bad "path-info of a missing path" 1 "$CASTORE" path-info /nix/store/00bgd045z0d4icpbc2yyz4gx48ak44la-missing
bad "path-info of a path outside the store" 2 "$CASTORE" path-info /usr/bin
bad "path-info of an unknown name" 1 "$CASTORE" path-info not-a-name
exit 0
