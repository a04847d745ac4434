#!/bin/bash
# Import/export round trips on a real tree plus generated edge cases,
# digests against b3sum, corruption detection, crash safety of import, and
# the command line's handling of bad input.
. "$(dirname "$0")/lib.sh"

STORE=$T_TMP/store
export CASTORE_STORE=$STORE
C() { "$CASTORE" "$@"; }

# ---- a source tree: part of /usr/share/doc plus edge cases ----
SRC=$T_TMP/src
mkdir -p "$SRC"
if [ -d /usr/share/doc ]; then
        cp -a /usr/share/doc "$SRC/doc" 2>/dev/null || true
fi
E=$SRC/edge
mkdir -p "$E/empty-dir" "$E/deep/a/b/c/d/e/f/g/h/i/j" "$E/with space" "$E/with
newline"
: > "$E/empty-file"
printf 'Hello World!' > "$E/hello"
printf 'x' > "$E/deep/a/b/c/d/e/f/g/h/i/j/leaf"
printf 'exec\n' > "$E/script"; chmod 0755 "$E/script"
printf 'same' > "$E/copy1"; printf 'same' > "$E/copy2"; cp "$E/copy1" "$E/copy-exec"; chmod 755 "$E/copy-exec"
ln "$E/hello" "$E/hardlink"
ln -s hello "$E/rel-link"
ln -s /nix/store/somewhereelse "$E/abs-link"
ln -s does-not-exist "$E/dangling"
touch "$E/$(printf 'non-utf8-\377\376')" "$E/$(printf 'caf\303\251')" "$E/with space/f i l e"
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(255)) * 4096)' > "$E/blob_b"
head -c 5000000 /dev/urandom > "$E/large-random"
# canonical modes (castore records only the executable bit)
find "$SRC" -type d -exec chmod 0755 {} +
find "$SRC" -type f -perm /u+x -exec chmod 0755 {} +
find "$SRC" -type f ! -perm /u+x -exec chmod 0644 {} +

# type, mode, size (not for directories: ext4 sizes depend on history),
# symlink target and path of everything in a tree
listing() { (cd "$1" && { find . -type d -printf '%y %m %P\n'; find . ! -type d -printf '%y %m %s %l %P\n'; } | LC_ALL=C sort); }

# ---- import, export, compare ----
# loose blobs (--no-pack): one is damaged in place below; test-pack.sh damages packs
out=$(C import "$SRC" --name src --no-pack 2>"$T_TMP/err") && ok "import of a real tree" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "import of a real tree"; }
expect_eq "import prints name and digest" "$(echo "$out" | awk '{print $1}')" "src"
case $(echo "$out" | awk '{print $2}') in b3:*=) ok "digest in b3: display form" ;; *) notok "digest in b3: display form: $out" ;; esac

C export src "$T_TMP/out" 2>"$T_TMP/err" && ok "export" || { sed 's/^/# /' "$T_TMP/err"; notok "export"; }
check "export identical by diff -r" diff -r --no-dereference "$SRC" "$T_TMP/out"
expect_eq "export identical by find listing" "$(listing "$T_TMP/out" | md5sum)" "$(listing "$SRC" | md5sum)"

# re-import gives the same digest; a second store gets the same digest too
d1=$(echo "$out" | awk '{print $2}')
d2=$(C import "$SRC" --name src2 | awk '{print $2}')
d3=$(CASTORE_STORE=$T_TMP/store-b "$CASTORE" import "$T_TMP/out" --name x | awk '{print $2}')
expect_eq "re-import is deterministic" "$d2" "$d1"
expect_eq "import of the export gives the same digest" "$d3" "$d1"

# ---- the store path is the one nix-store --add prints ----
if have nix-store; then
        want=$(NIX_CONFIG=$'build-users-group =\nsandbox = false' nix-store --store "$T_TMP/nix" --add "$SRC" 2>/dev/null)
        got=$(C import "$SRC" | awk '{print $3}')
        expect_eq "import prints the store path of nix-store --add" "$got" "$want"
        got=$(C import "$E/hello" --name hello.txt | awk '{print $3}')
        want=$(cp "$E/hello" "$T_TMP/hello.txt" && NIX_CONFIG=$'build-users-group =\nsandbox = false' nix-store --store "$T_TMP/nix" --add "$T_TMP/hello.txt" 2>/dev/null)
        expect_eq "import of a single file prints the store path of nix-store --add" "$got" "$want"
else
        skip "store paths against nix-store --add" "nix-store is not installed"
fi

# ---- digests against b3sum ----
if have b3sum; then
        C ls -lR src | awk '$1 == "file" || $1 == "exec" {d=$3; $1=$2=$3=""; sub(/^ +/, ""); print d, $0}' |
                python3 -c '
import sys, base64
for line in sys.stdin.buffer:
    d, p = line.rstrip(b"\n").split(b" ", 1)
    print(base64.b64decode(d[3:]).hex(), p.decode("utf-8", "surrogateescape"))' | LC_ALL=C sort > "$T_TMP/ours"
        (cd "$SRC" && find . -type f ! -name '*
*' -printf '%P\0' | xargs -0 b3sum --no-names | paste -d' ' - <(find . -type f ! -name '*
*' -printf '%P\n')) | LC_ALL=C sort > "$T_TMP/theirs"
        n=$(wc -l < "$T_TMP/theirs")
        if [ "$n" -gt 100 ] && diff <(sort "$T_TMP/theirs") <(sort "$T_TMP/ours") > "$T_TMP/b3diff"; then
                ok "every blob digest equals b3sum ($n files)"
        else
                head -5 "$T_TMP/b3diff" | sed 's/^/# /'; notok "every blob digest equals b3sum ($n files)"
        fi
        expect_eq "BLOB_B known answer" "$(grep ' edge/blob_b$' "$T_TMP/ours" | cut -d' ' -f1)" \
                a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2
else
        skip "digests against b3sum" "b3sum is not installed"
fi

# ---- ls, stat, cat ----
expect_eq "cat returns file content" "$(C cat src/edge/hello)" "Hello World!"
expect_eq "cat of a large file" "$(C cat src/edge/large-random | md5sum)" "$(md5sum < "$E/large-random")"
C stat src/edge/script | grep -q '^executable: yes' && ok "stat shows the executable bit" || notok "stat shows the executable bit"
C stat src/edge/abs-link | grep -q '^target: /nix/store/somewhereelse' && ok "stat shows symlink targets" || notok "stat shows symlink targets"
expect_eq "ls lists in byte order" "$(C ls src/edge | head -3 | tr '\n' ' ')" "abs-link blob_b caf$(printf '\303\251') "
C ls | grep -q '^src/$' && ok "ls lists the roots" || notok "ls lists the roots"

# ---- corruption: verify reports it, cat never returns it ----
C verify >"$T_TMP/v" 2>&1 && ok "verify passes on a sound store" || { sed 's/^/# /' "$T_TMP/v" | head; notok "verify passes on a sound store"; }
hex=$(C ls -l src/edge | awk '$NF == "hello" {print $3}' | python3 -c 'import sys,base64; print(base64.b64decode(sys.stdin.read().strip()[3:]).hex())')
blob=$STORE/blobs/${hex:0:2}/$hex
if [ -f "$blob" ]; then
        printf 'J' | dd of="$blob" bs=1 seek=0 conv=notrunc status=none
        sync
        echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        if C verify > "$T_TMP/v" 2>&1; then notok "verify reports a flipped byte"; else
                grep -q "corrupt blob" "$T_TMP/v" && ok "verify reports a flipped byte" || { sed 's/^/# /' "$T_TMP/v"; notok "verify reports a flipped byte"; }
        fi
        out=$(C cat src/edge/hello 2>"$T_TMP/err"); rc=$?
        [ $rc -ne 0 ] && [ -z "$out" ] && grep -q corrupt "$T_TMP/err" && ok "cat refuses a corrupt blob" || notok "cat refuses a corrupt blob (rc=$rc out=$out)"
        C export src/edge "$T_TMP/out2" 2>/dev/null && notok "export refuses a corrupt blob" || ok "export refuses a corrupt blob"
        printf 'H' | dd of="$blob" bs=1 seek=0 conv=notrunc status=none
        C verify >/dev/null 2>&1 && ok "verify passes again once repaired" || notok "verify passes again once repaired"
else
        notok "blob file of edge/hello not found at $blob"
fi

# ---- crash safety: kill -9 during import, then verify and re-import ----
BIG=$T_TMP/big
mkdir -p "$BIG"
for i in $(seq 1 40); do
        mkdir -p "$BIG/d$i"
        for j in $(seq 1 50); do printf '%s %s\n' "$i" "$j" > "$BIG/d$i/f$j"; done
        head -c 2000000 /dev/urandom > "$BIG/d$i/big"
done
want=$(CASTORE_STORE=$T_TMP/store-ref "$CASTORE" import "$BIG" --name big | awk '{print $2}')
# Each import is killed when it has reached a given point, watched in the
# store (not after a fixed delay, which a slow machine could turn into a
# kill before anything happened): the store just created, blobs being
# written as temporaries (the import defers their renames to its sync),
# most of them written, and the renames into blobs/ under way.
entries() { local f=("$1"/*); [ -e "${f[0]}" ] && echo ${#f[@]} || echo 0; }
at_created() { [ -f "$CS/castore-store" ]; }
at_tmp_100() { [ "$(entries "$CS/tmp")" -ge 100 ]; }
at_tmp_1500() { [ "$(entries "$CS/tmp")" -ge 1500 ]; }
at_renames() { [ "$(entries "$CS/blobs")" -ge 1 ]; }
n=0
for point in created tmp_100 tmp_1500 renames; do
        n=$((n + 1))
        CS=$T_TMP/store-kill-$n
        # loose blobs: the points watched are temporaries and renames (test-pack.sh kills packing imports)
        CASTORE_STORE=$CS "$CASTORE" import "$BIG" --name big --no-pack >/dev/null 2>&1 &
        pid=$!
        until at_$point; do
                pid_gone $pid && break
                sleep 0.005
        done
        kill -9 $pid 2>/dev/null
        rc=0
        wait $pid 2>/dev/null || rc=$?
        if [ $rc -eq 0 ]; then
                skip "kill -9 at $point" "the import finished before it got there"
                continue
        elif [ $rc -ne 137 ]; then
                notok "kill -9 at $point: the import failed before it got there (exit $rc)"
                continue
        fi
        if [ -f "$CS/castore-store" ]; then
                CASTORE_STORE=$CS "$CASTORE" verify >"$T_TMP/v" 2>&1 && ok "verify after kill -9 at $point" ||
                        { sed 's/^/# /' "$T_TMP/v" | head; notok "verify after kill -9 at $point"; }
        else
                notok "kill -9 at $point: the store exists"
        fi
        got=$(CASTORE_STORE=$CS "$CASTORE" import "$BIG" --name big --no-pack 2>/dev/null | awk '{print $2}')
        expect_eq "re-import after kill -9 at $point" "$got" "$want"
        CASTORE_STORE=$CS "$CASTORE" verify >/dev/null 2>&1 && ok "verify after re-import ($point)" || notok "verify after re-import ($point)"
        leftovers=$(find "$CS/tmp" -type f 2>/dev/null | wc -l)
        expect_eq "no temporary files left after re-import ($point)" "$leftovers" 0
done

# ---- a tree deeper than the default limit of open files (1024) ----
python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for i in range(1500):
    os.mkdir("d", dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
os.close(fd)' "$(mkdir -p "$T_TMP/deep" && echo "$T_TMP/deep")"
out=$(ulimit -Sn 1024; C import --no-nix "$T_TMP/deep" --name deep 2>&1) && ok "import of a tree 1500 levels deep" ||
        { echo "# ${out:0:300}"; notok "import of a tree 1500 levels deep"; }
err=$(ulimit -Sn 1024; C import "$T_TMP/deep" --name deep 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "nested deeper than a NAR may be" && [ "$(C ls deep)" = "d/" ] &&
        ok "too deep for a NAR: named root only, with a clear error" || notok "too deep for a NAR (rc=$rc)"

# ---- special files ----
SP=$T_TMP/special; mkdir -p "$SP"; echo x > "$SP/file"; mkfifo "$SP/fifo"
err=$(C import "$SP" 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "$SP/fifo" && ok "a fifo is refused, naming its path" || notok "a fifo is refused ($rc: $err)"
C import "$SP" --skip-special --name sp >/dev/null 2>&1 && expect_eq "--skip-special leaves it out" "$(C ls sp)" "file" ||
        notok "--skip-special import"

# ---- bad input: one-line errors, non-zero exit, no crash ----
bad() {  # NAME EXPECTED-EXIT CMD...
        local name=$1 want=$2; shift 2
        local err rc=0
        err=$("$@" 2>&1 >/dev/null) || rc=$?
        if [ $rc -eq "$want" ] && [ "$(printf '%s\n' "$err" | wc -l)" -le 2 ] && [ -n "$err" ]; then ok "$name"
        else printf '# exit %s: %s\n' "$rc" "$err" | head -5; notok "$name"; fi
}
bad "unknown command" 2 "$CASTORE" frobnicate
bad "unknown option" 2 "$CASTORE" import --bogus "$SRC"
bad "import without a path" 2 "$CASTORE" import
bad "import of a missing path" 1 "$CASTORE" import "$T_TMP/nope"
bad "missing store" 1 "$CASTORE" --store "$T_TMP/no-store" ls
bad "missing root" 1 "$CASTORE" cat nosuchroot/x
bad "missing path in a root" 1 "$CASTORE" cat src/edge/nope
bad "cat of a directory" 1 "$CASTORE" cat src/edge
bad "export onto an existing path" 1 "$CASTORE" export src "$T_TMP"
bad "bad --threads" 2 "$CASTORE" import --threads 0 "$SRC"
bad "a non-store directory" 1 "$CASTORE" --store /usr/share ls
bad "an invalid root name" 2 "$CASTORE" import "$E/hello" --name "a/b"
exit 0
