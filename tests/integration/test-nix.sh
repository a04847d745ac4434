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

# A scratch chroot store: paths still print as /nix/store/..., no daemon,
# no build users, nothing outside T_TMP.
NIXROOT=$T_TMP/nixroot
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config XDG_DATA_HOME=$T_TMP/data
export NIX_CONFIG='build-users-group =
sandbox = false
substituters =
experimental-features = nix-command'
export NIX_REMOTE=
mkdir -p "$HOME"
nixs() { nix-store --store "$NIXROOT" "$@"; }

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
find "$TREES" -type d -exec chmod 0755 {} +

# name: the store path name nix-store --add gives (the basename)
for tree in tree empty single single-exec single-link .dot; do
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
        for tree in tree empty single single-exec single-link .dot; do
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
                C umount "$MNT"
                C mount --daemon --list-root "$MNT"
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
bad "path-info of a bad path" 2 "$CASTORE" path-info not-a-path
exit 0
