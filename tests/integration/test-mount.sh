#!/bin/bash
# castore mount on real FUSE mounts: the root (listing, lookups, roots
# added later), attributes and modes, inode sharing, reads (BLOB_B at many
# offsets, 16 concurrent readers, mmap, executables), symlinks, xattrs,
# EROFS, EIO for missing/corrupted content, a 100,000-entry directory,
# non-UTF-8 names, a copy of /usr/share/doc compared with its source,
# passthrough on and off,
# unmounting (signals, castore umount, busy readers, a killed daemon) and
# the daemon's memory across repeated walks.
. "$(dirname "$0")/lib.sh"

if [ ! -c /dev/fuse ]; then
        skip "mount" "/dev/fuse is missing"
        exit 0
fi
if [ "$(id -u)" != 0 ] && ! have fusermount3; then
        skip "mount" "not root and no fusermount3"
        exit 0
fi

STORE=$T_TMP/store
SRC=$T_TMP/src
cs() { "$CASTORE" --store "$STORE" "$@"; }

# --- fixtures ---------------------------------------------------------------
mkdir -p "$SRC/tree"
(
        cd "$SRC/tree" || exit 1
        printf 'hello\n' >a.txt
        printf 'hello\n' >copy_of_a.txt
        printf '#!/bin/sh\necho hi from castore\n' >exec.sh
        chmod 755 exec.sh
        cp exec.sh exec_copy.sh
        chmod 644 exec_copy.sh
        cp /bin/true true_bin
        : >empty_file
        ln -s a.txt link_to_a
        ln -s a.txt link2_to_a
        ln -s does/not/exist dangling
        ln -s /etc/hostname absolute_link
        mkdir -p d1 d2 empty_dir deep/l1/l2/l3/l4
        printf 'x\n' >d1/x.txt
        printf 'x\n' >d2/x.txt
        printf 'leaf\n' >deep/l1/l2/l3/l4/leaf.txt
        printf 'l3\n' >deep/l1/l2/l3/file3
        printf 'latin1\n' >"$(printf 'caf\xe9')"
        printf 'ff\n' >"$(printf '\xff\xfe name')"
        # BLOB_B: bytes 0x00..0xFE repeated 4096 times
        python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(255)) * 4096)' >blob_b
        head -c $((24 << 20)) /dev/urandom >random24m
) || { notok "creating fixtures"; exit 0; }
if have b3sum; then
        expect_eq "BLOB_B fixture has the SPEC digest" "$(b3sum --no-names "$SRC/tree/blob_b")" \
                a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2
else
        skip "BLOB_B fixture has the SPEC digest" "b3sum is not installed"
fi
printf 'single file root\n' >"$SRC/single"

# A directory of 100,000 empty files, made on tmpfs where there is one
# (several times faster), imported, then removed.
BIG=$T_TMP/big100k
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        BIG=$(mktemp -d /dev/shm/castore-test-big.XXXXXX)/big100k
        at_exit "rm -rf '$(dirname "$BIG")'"
fi
mkdir -p "$BIG"
python3 - "$BIG" <<'EOF'
import os, sys
os.chdir(sys.argv[1])
for i in range(100000):
    os.close(os.open('f%06d' % i, os.O_CREAT | os.O_WRONLY, 0o644))
EOF

start=$SECONDS
cs import "$SRC/tree" --name tree >/dev/null &&
        cs import "$SRC/single" --name single >/dev/null &&
        cs import /usr/share/doc --name doc >/dev/null &&
        cs import "$BIG" --name big100k >/dev/null
rc=$?
rm -rf "$BIG"
check "import fixtures ($((SECONDS - start))s)" test $rc -eq 0

# --- mount helpers ----------------------------------------------------------
# mnt DIR ARGS...: mounts the store on DIR as a daemon.
mnt() {
        local dir=$1
        shift
        mkdir -p "$dir"
        cs mount "$dir" --daemon "$@"
}
daemon_pid() { pgrep -f -- "mount $1 --daemon" | head -1; }
# drop_caches N: makes the kernel forget (2: dentries and inodes); fails
# where that is not allowed, and the checks that need it then skip
drop_caches() { echo "$1" 2>/dev/null >/proc/sys/vm/drop_caches; }
mounted() { grep -q " $1 fuse.castore " /proc/mounts; }
# wait_gone DIR SECONDS: the daemon serving DIR has exited and DIR is unmounted
gone() { ! mounted "$1" && [ -z "$(daemon_pid "$1")" ]; }
wait_gone() { wait_until "$2" gone "$1"; }
# errno_of OP PATH [ARG]: prints the errno name an operation fails with, or OK
errno_of() {
        python3 - "$@" <<'EOF'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == 'stat': os.stat(path)
    elif op == 'lstat': os.lstat(path)
    elif op == 'open': os.close(os.open(path, os.O_RDONLY))
    elif op == 'read':
        with open(path, 'rb') as f: f.read()
    elif op == 'listdir': os.listdir(path)
    elif op == 'create': os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    elif op == 'write': os.close(os.open(path, os.O_WRONLY))
    elif op == 'trunc': os.truncate(path, 0)
    elif op == 'mkdir': os.mkdir(path)
    elif op == 'rmdir': os.rmdir(path)
    elif op == 'unlink': os.unlink(path)
    elif op == 'rename': os.rename(path, path + '.new')
    elif op == 'chmod': os.chmod(path, 0o777)
    elif op == 'chown': os.chown(path, 1, 1)
    elif op == 'utime': os.utime(path, (5, 5))
    elif op == 'symlink': os.symlink('x', path)
    elif op == 'link': os.link(sys.argv[3], path)
    elif op == 'setxattr': os.setxattr(path, 'user.x', b'1')
    elif op == 'getxattr': os.getxattr(path, sys.argv[3])
    elif op == 'readlink': os.readlink(path)
    else: raise SystemExit('unknown op ' + op)
    print('OK')
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}

M=$T_TMP/m
if ! mnt "$M"; then
        notok "mount --daemon"
        exit 0
fi
ok "mount --daemon returns with the mount ready"
expect_eq "mount --daemon: the daemon keeps no working directory busy" "$(readlink "/proc/$(daemon_pid "$M")/cwd")" /
check "mount table: fuse.castore, read-only, nosuid, nodev" \
        grep -Eq " $M fuse.castore ro,nosuid,nodev" /proc/mounts

# --- the root ---------------------------------------------------------------
expect_eq "root readdir without --list-root: EPERM" "$(errno_of listdir "$M")" EPERM
expect_eq "root stat" "$(stat -c '%i %a %F %u %g' "$M")" "1 555 directory 0 0"
check "root mtime is the mount time" test "$(stat -c %Y "$M")" -gt 1000000
expect_eq "lookup of a root" "$(stat -c %F "$M/tree")" "directory"
expect_eq "file root: stat" "$(stat -c '%F %s %a' "$M/single")" "regular file 17 444"
expect_eq "file root: read" "$(cat "$M/single")" "single file root"
for name in tre treee Tree "tree " "$(printf 'tree\x01')" "..." nonexistent; do
        expect_eq "root lookup of '$name': ENOENT" "$(errno_of stat "$M/$name")" ENOENT
done
expect_eq "root lookup of a file root as a directory: ENOTDIR" "$(errno_of stat "$M/single/")" ENOTDIR

# a root added while mounted is visible at once (no negative caching) and
# a re-pointed root shows its new content within the short timeout
expect_eq "root added later: absent before" "$(errno_of stat "$M/later")" ENOENT
printf 'v1\n' >"$T_TMP/later"
cs import "$T_TMP/later" --name later >/dev/null
expect_eq "root added later: visible" "$(cat "$M/later" 2>&1)" "v1"
printf 'version two\n' >"$T_TMP/later"
cs import --force "$T_TMP/later" --name later >/dev/null
start=$(date +%s%N)
repointed() { [ "$(cat "$M/later" 2>&1)" = "version two" ]; }
if wait_until 10 repointed; then
        # the kernel keeps a root name for one second: a few more are slack
        check "re-pointed root: new content within the root timeout ($((($(date +%s%N) - start) / 1000000)) ms)" \
                test $(($(date +%s%N) - start)) -lt 5000000000
else
        expect_eq "re-pointed root: new content within the root timeout" "$(cat "$M/later" 2>&1)" "version two"
fi

L=$T_TMP/list
mnt "$L" --list-root --uid 1000 --gid 100 || notok "mount --list-root"
# imports register store paths too (store path basenames are listed first)
expect_eq "--list-root: named roots in name order" "$(ls -1 -f "$L" | grep -vE '^([0-9a-z]{32}-|\.)' | tr '\n' ' ')" "big100k doc later single tree "
expect_eq "--list-root: store paths in name order" "$(ls -1 -f "$L" | grep -E '^[0-9a-z]{32}-' | LC_ALL=C sort -c && echo sorted)" sorted
expect_eq "--list-root: root size is the root count" "$(stat -c %s "$L")" "$(ls -1 -A "$L" | wc -l)"
expect_eq "--uid/--gid" "$(stat -c '%u %g' "$L/tree/a.txt" "$L")" "1000 100
1000 100"
cs umount "$L"
check "castore umount: daemon gone, mount gone" wait_gone "$L" 10

# --- attributes -------------------------------------------------------------
T=$M/tree
expect_eq "modes: file, executable, directory, symlink" \
        "$(stat -c '%a %F' "$T/a.txt" "$T/exec.sh" "$T/d1" "$T/link_to_a")" \
        "444 regular file
555 regular file
555 directory
444 symbolic link"
expect_eq "uid/gid default to 0" "$(stat -c '%u %g' "$T/a.txt" "$T/d1")" "0 0
0 0"
expect_eq "fixed times below the root" "$(stat -c '%X %Y %Z' "$T/a.txt" "$T/d1" "$T/link_to_a" | sort -u)" "1 1 1"
expect_eq "file size and blocks" "$(stat -c '%s %b' "$T/blob_b" "$T/empty_file")" "1044480 2040
0 0"
expect_eq "directory size is its entry count (recursive)" \
        "$(stat -c %s "$T/d1" "$T/empty_dir" "$T/deep" "$T/deep/l1/l2/l3")" "1
0
6
3"
expect_eq "symlink size is the target length" "$(stat -c %s "$T/link_to_a")" 5
expect_eq "nlink" "$(stat -c %h "$T/a.txt" "$T/d1" | tr '\n' ' ')" "1 1 "

# --- inode sharing ----------------------------------------------------------
ino() { stat -c %i "$@"; }
expect_eq "identical files share an inode" "$(ino "$T/a.txt")" "$(ino "$T/copy_of_a.txt")"
expect_eq "identical directories share an inode" "$(ino "$T/d1")" "$(ino "$T/d2")"
expect_eq "identical symlinks share an inode" "$(ino "$T/link_to_a")" "$(ino "$T/link2_to_a")"
check "exec and non-exec copies have distinct inodes" test "$(ino "$T/exec.sh")" != "$(ino "$T/exec_copy.sh")"
check "empty file and empty directory have distinct inodes" test "$(ino "$T/empty_file")" != "$(ino "$T/empty_dir")"
check "readdir inode numbers match stat" sh -c "[ \"\$(ls -i '$T' | awk '/ a.txt\$/ {print \$1}')\" = \"$(ino "$T/a.txt")\" ]"
i1=$(ino "$T/d1/x.txt")
if drop_caches 2; then
        expect_eq "inode numbers are stable after the kernel forgets them" "$(ino "$T/d1/x.txt")" "$i1"
else
        skip "inode numbers are stable after the kernel forgets them" "cannot write /proc/sys/vm/drop_caches"
fi

# --- directories ------------------------------------------------------------
expect_eq "readdir in name order" "$(ls -1 -f "$T" | tr '\n' ' ')" \
        "a.txt absolute_link blob_b caf$(printf '\xe9') copy_of_a.txt d1 d2 dangling deep empty_dir empty_file exec.sh exec_copy.sh link2_to_a link_to_a random24m true_bin $(printf '\xff\xfe') name "
expect_eq "readdir of a deep directory, parents never listed" "$(ls -1 "$T/deep/l1/l2/l3" | tr '\n' ' ')" "file3 l4 "
expect_eq "empty directory" "$(ls -A "$T/empty_dir" | wc -l)" 0
expect_eq "non-UTF-8 names: stat and read" "$(cat "$T/$(printf 'caf\xe9')" "$T/$(printf '\xff\xfe name')")" "latin1
ff"
big=$(ls -f "$M/big100k")
expect_eq "100,000 entries listed" "$(printf '%s\n' "$big" | wc -l)" 100000
expect_eq "100,000 entries: in order, none lost or repeated" \
        "$(printf '%s\n' "$big" | md5sum)" "$(python3 -c 'print("\n".join("f%06d" % i for i in range(100000)))' | md5sum)"
expect_eq "100,000 entries: stat of the last" "$(stat -c '%s %a' "$M/big100k/f099999")" "0 444"

# --- symlinks ---------------------------------------------------------------
expect_eq "readlink" "$(readlink "$T/link_to_a") $(readlink "$T/absolute_link")" "a.txt /etc/hostname"
expect_eq "read through a symlink" "$(cat "$T/link_to_a")" "hello"
expect_eq "dangling symlink: stat ENOENT" "$(errno_of stat "$T/dangling")" ENOENT
expect_eq "dangling symlink: lstat ok" "$(errno_of lstat "$T/dangling")" OK
expect_eq "readlink of a file: EINVAL" "$(errno_of readlink "$T/a.txt")" EINVAL

# --- xattrs -----------------------------------------------------------------
b3() { python3 -c 'import base64, sys; print("b3:" + base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "$1"; }
expect_eq "file xattr keys" "$(getfattr --absolute-names -d -m - "$T/blob_b" | grep -v '^#' | cut -d= -f1 | sed '/^$/d')" \
        "user.castore.blob.digest"
expect_eq "file xattr value: BLOB_B digest" \
        "$(getfattr --absolute-names --only-values -n user.castore.blob.digest "$T/blob_b")" \
        "$(b3 a82c5154a7a0c262c6fdb929a317585646f8fbcf80326d0a7b8747edaf2d99d2)"
expect_eq "directory xattr keys" "$(python3 -c 'import os,sys; print(os.listxattr(sys.argv[1]))' "$T/d1")" \
        "['user.castore.directory.digest']"
expect_eq "directory xattr value" "$(getfattr --absolute-names --only-values -n user.castore.directory.digest "$M/tree")" \
        "$(cs stat tree | awk '/^digest:/ {print $2}')"
expect_eq "symlink: no xattrs" "$(python3 -c 'import os,sys; print(os.listxattr(sys.argv[1], follow_symlinks=False))' "$T/link_to_a")" "[]"
expect_eq "unknown xattr: ENODATA" "$(errno_of getxattr "$T/a.txt" user.nope)" ENODATA
expect_eq "directory key on a file: ENODATA" "$(errno_of getxattr "$T/a.txt" user.castore.directory.digest)" ENODATA

# --- read-only --------------------------------------------------------------
for op in create mkdir symlink; do
        expect_eq "$op: EROFS" "$(errno_of $op "$T/new_entry")" EROFS
done
for op in write trunc unlink rename chmod chown utime setxattr; do
        expect_eq "$op: EROFS" "$(errno_of $op "$T/a.txt")" EROFS
done
expect_eq "rmdir: EROFS" "$(errno_of rmdir "$T/empty_dir")" EROFS
expect_eq "link: EROFS" "$(errno_of link "$T/new_link" "$T/a.txt")" EROFS
expect_eq "create at the root: EROFS" "$(errno_of create "$M/newroot")" EROFS

# --- reads ------------------------------------------------------------------
# read_checks MNT LABEL: content checks that depend on the read path
read_checks() {
        local m=$1 l=$2
        check "$l: BLOB_B at many offsets" python3 - "$m/tree/blob_b" <<'EOF'
import os, sys
want = bytes(range(255)) * 4096
fd = os.open(sys.argv[1], os.O_RDONLY)
offs = [0, 1, 254, 255, 256, 4095, 4096, 4097, 65535, 65536, 131071, 1 << 20, len(want) - 4097,
        len(want) - 4096, len(want) - 255, len(want) - 1, len(want), len(want) + 1, 10 << 20]
offs += list(range(0, len(want), 77777))
for off in offs:
    for size in (1, 100, 4096, 5000, 131072, 1 << 20):
        got = os.pread(fd, size, off)
        if got != want[off:off + size]:
            sys.exit("mismatch at offset %d size %d (got %d bytes)" % (off, size, len(got)))
os.close(fd)
EOF
        check "$l: whole-file reads match the source" cmp "$SRC/tree/random24m" "$m/tree/random24m"
        check "$l: 16 threads of random-offset reads" python3 - "$SRC/tree/random24m" "$m/tree/random24m" <<'EOF'
import os, random, sys, threading
src, dst = sys.argv[1], sys.argv[2]
size = os.path.getsize(src)
errors = []
def worker(seed):
    rnd = random.Random(seed)
    a, b = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDONLY)
    for _ in range(300):
        off = rnd.randrange(0, size)
        n = rnd.choice((1, 512, 4096, 65536, 300000))
        if os.pread(a, n, off) != os.pread(b, n, off):
            errors.append((off, n))
    os.close(a); os.close(b)
ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
[t.start() for t in ts]; [t.join() for t in ts]
sys.exit("mismatches: %r" % errors[:5] if errors else 0)
EOF
        check "$l: mmap" python3 - "$SRC/tree/random24m" "$m/tree/random24m" <<'EOF'
import mmap, sys
a = open(sys.argv[1], 'rb').read()
with open(sys.argv[2], 'rb') as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    assert m[:] == a and m[12345:67890] == a[12345:67890]
    m.close()
EOF
        expect_eq "$l: run a script from the mount" "$("$m/tree/exec.sh")" "hi from castore"
        check "$l: run a binary from the mount" "$m/tree/true_bin"
        expect_eq "$l: non-executable file: EACCES" "$(python3 -c 'import os,sys
try:
    os.execv(sys.argv[1], [sys.argv[1]])
except OSError as e:
    import errno; print(errno.errorcode[e.errno])' "$m/tree/exec_copy.sh")" EACCES
        expect_eq "$l: empty file" "$(wc -c <"$m/tree/empty_file")" 0
}
read_checks "$M" "passthrough=auto"
P=$T_TMP/nopt
mnt "$P" --passthrough=off --threads 3 || notok "mount --passthrough=off"
read_checks "$P" "passthrough=off"
cs umount "$P"
wait_gone "$P" 10 || notok "unmount of the passthrough=off mount"
P=$T_TMP/pton
if mnt "$P" --passthrough=on 2>"$T_TMP/pton.err"; then
        read_checks "$P" "passthrough=on"
        cs umount "$P"
        wait_gone "$P" 10 || notok "unmount of the passthrough=on mount"
elif grep -q "does not offer" "$T_TMP/pton.err"; then
        skip "passthrough=on" "$(head -1 "$T_TMP/pton.err")"
else
        cat "$T_TMP/pton.err" | sed 's/^/# /'
        notok "mount --passthrough=on"
fi

# --- a real tree compared with its source -----------------------------------
check "copy of /usr/share/doc: diff -r" diff -r --no-dereference /usr/share/doc "$M/doc"
# find listing, with the source's modes and directory sizes mapped to castore's
(cd /usr/share/doc && find . -printf '%y %m %s %l %P\n' | python3 -c '
import os, sys
for line in sys.stdin.buffer:
    f = line.rstrip(b"\n").split(b" ", 4)
    y, m, s, l, p = f[0], int(f[1], 8), f[2], f[3], f[4]
    if y == b"d":
        m, s = 0o555, str(sum(len(fs) + len(ds) for _, ds, fs in os.walk(p or b"."))).encode()
    elif y == b"f":
        m = 0o555 if m & 0o100 else 0o444
    elif y == b"l":
        m = 0o444
    sys.stdout.buffer.write(b"%s %o %s %s %s\n" % (y, m, s, l, p))
') | sort >"$T_TMP/doc.want"
(cd "$M/doc" && find . -printf '%y %m %s %l %P\n') | sort >"$T_TMP/doc.got"
check "copy of /usr/share/doc: find listing (type, mode, size, target, path)" diff "$T_TMP/doc.want" "$T_TMP/doc.got"

# --- missing and corrupted content: EIO ---------------------------------------
mkdir -p "$SRC/broken/dir_missing/sub" "$SRC/broken/ok_dir"
printf 'inside a directory whose Directory message goes missing\n' >"$SRC/broken/dir_missing/sub/f"
printf 'this blob will be deleted\n' >"$SRC/broken/blob_missing"
printf 'this blob will be corrupted\n' >"$SRC/broken/blob_corrupt"
printf 'fine\n' >"$SRC/broken/ok_dir/fine"
cs import "$SRC/broken" --name broken --no-pack >/dev/null  # loose blobs: damaged below
hex() { python3 -c 'import base64, sys; print(base64.b64decode(sys.argv[1][3:]).hex())' "$(cs stat "$1" | awk '/^digest:/ {print $2}')"; }
bm=$(hex broken/blob_missing)
bc=$(hex broken/blob_corrupt)
dm=$(hex broken/dir_missing/sub)
rm -f "$STORE/blobs/${bm:0:2}/$bm"
chmod u+w "$STORE/blobs/${bc:0:2}/$bc" 2>/dev/null
printf 'THIS blob will be corrupted\n' >"$STORE/blobs/${bc:0:2}/$bc"
# No command deletes a Directory: rename its key in the LMDB file instead
# (the last key byte, so the B-tree order is kept; LMDB keys are stored
# after a 16-bit little-endian key size, Directory fields after 0x12 0x20).
python3 - "$STORE/meta/data.mdb" "$dm" <<'EOF'
import sys
path, key = sys.argv[1], bytes.fromhex(sys.argv[2])
data = bytearray(open(path, 'rb').read())
n, pos = 0, 0
while True:
    pos = data.find(key, pos)
    if pos < 0:
        break
    if data[pos - 2:pos] == b'\x20\x00':
        data[pos + 31] ^= 0xff
        n += 1
    pos += 1
if n == 0:
    sys.exit("key not found")
open(path, 'r+b').write(data)
EOF
check "Directory removed from the store" sh -c "! '$CASTORE' --store '$STORE' ls broken/dir_missing/sub >/dev/null 2>&1"
B=$T_TMP/broken
mnt "$B" || notok "mount of the broken store"
expect_eq "missing Directory: stat works" "$(stat -c '%F %s' "$B/broken/dir_missing/sub")" "directory 1"
expect_eq "missing Directory: listing EIO" "$(errno_of listdir "$B/broken/dir_missing/sub")" EIO
expect_eq "missing Directory: child lookup EIO" "$(errno_of stat "$B/broken/dir_missing/sub/f")" EIO
expect_eq "missing blob: stat works" "$(stat -c %s "$B/broken/blob_missing")" 26
expect_eq "missing blob: read EIO" "$(errno_of read "$B/broken/blob_missing")" EIO
expect_eq "corrupted blob: stat works" "$(stat -c %s "$B/broken/blob_corrupt")" 28
expect_eq "corrupted blob: read EIO" "$(errno_of read "$B/broken/blob_corrupt")" EIO
expect_eq "corrupted blob: still EIO when opened again" "$(errno_of read "$B/broken/blob_corrupt")" EIO
expect_eq "the rest of the tree still reads" "$(cat "$B/broken/ok_dir/fine")" "fine"
cs umount "$B"
wait_gone "$B" 10 || notok "unmount of the broken store"
# without passthrough files are opened without asking the daemon: the
# blob is checked on the first read
mnt "$B" --passthrough=off || notok "mount of the broken store without passthrough"
expect_eq "no passthrough: missing blob: read EIO" "$(errno_of read "$B/broken/blob_missing")" EIO
expect_eq "no passthrough: corrupted blob: read EIO" "$(errno_of read "$B/broken/blob_corrupt")" EIO
expect_eq "no passthrough: corrupted blob: still EIO" "$(errno_of read "$B/broken/blob_corrupt")" EIO
expect_eq "no passthrough: good file reads" "$(cat "$B/broken/ok_dir/fine")" "fine"
cs umount "$B"
wait_gone "$B" 10 || notok "unmount of the broken store (no passthrough)"

# --- memory: forget releases inodes -------------------------------------------
pid=$(daemon_pid "$M")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
find "$M/doc" "$M/tree" -printf '%s %p\n' >/dev/null
dropped=0
drop_caches 2 && dropped=1
find "$M/doc" "$M/tree" -printf '%s %p\n' >/dev/null
rss1=$(rss "$pid")
for i in $(seq 20); do
        drop_caches 2
        find "$M/doc" "$M/tree" -printf '%s %p\n' >/dev/null
done
rss20=$(rss "$pid")
echo "# daemon RSS after walk 2: ${rss1} kB, after walk 22: ${rss20} kB"
if [ $dropped = 0 ]; then
        skip "daemon RSS stable across 20 walks" "cannot write /proc/sys/vm/drop_caches"
elif grep -qaE 'AddressSanitizer|ThreadSanitizer' "$CASTORE" || ldd "$CASTORE" 2>/dev/null | grep -qE 'lib[at]san'; then
        # sanitizers keep freed memory in quarantine or shadow: RSS says nothing there
        skip "daemon RSS stable across 20 walks" "castore built with a sanitizer"
else
        check "daemon RSS stable across 20 walks with dropped caches" test "$rss20" -le $((rss1 + rss1 / 10 + 2048))
        check "daemon RSS below 100 MB" test "$rss20" -lt 102400
fi

# --- stopping ---------------------------------------------------------------
# SIGTERM with a reader holding a file open and reading at random offsets:
# its reads either keep working (page cache, passthrough) or fail, but
# none blocks
python3 -c '
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
os.pread(fd, 65536, 0)
open(sys.argv[2], "w").close()
end, worst = time.time() + 4, 0.0
while time.time() < end:
    t = time.time()
    try:
        os.pread(fd, 65536, random.randrange(0, 24 << 20))
    except OSError:
        pass
    worst = max(worst, time.time() - t)
sys.exit(1 if worst > 2 else 0)
' "$M/tree/random24m" "$T_TMP/reader.ready" &
reader=$!
wait_until 30 test -e "$T_TMP/reader.ready" || notok "SIGTERM with an active reader: the reader started reading"
kill -TERM "$pid"
check "SIGTERM with an active reader: daemon exits, mount gone" wait_gone "$M" 10
wait "$reader"
expect_eq "the reader's reads never blocked" "$?" 0

# castore umount with a busy reader: detached at once, daemon exits when
# the reader stops.  The holder opens a file on the mount, then says so
# through a fifo, and holds it until told to go through another.
U=$T_TMP/u
mnt "$U" || notok "mount (umount test)"
upid=$(daemon_pid "$U")
mkfifo "$T_TMP/held" "$T_TMP/release"
exec 7<>"$T_TMP/held" 8<>"$T_TMP/release" # read-write: opening never blocks
(
        exec 7>&- 8>&-
        if exec 3<"$U/tree/a.txt"; then echo held >"$T_TMP/held"; else echo failed >"$T_TMP/held"; fi
        read -r _ <"$T_TMP/release"
) &
holder=$!
held=
read -r -t 30 held <&7
expect_eq "busy mount: a process holds a file open on it" "$held" held
check "castore umount of a busy mount" sh -c "'$CASTORE' --store '$STORE' umount '$U' 2>&1 | grep -q busy"
check "busy mount detached from the namespace" sh -c "! grep -q ' $U fuse.castore ' /proc/mounts"
check "busy mount: the daemon serves on while the file is held" kill -0 "$upid"
echo go >&8
wait "$holder"
exec 7>&- 8>&-
check "daemon exits once the last user is gone" wait_gone "$U" 10

# foreground mount stopped by SIGINT
F=$T_TMP/fg
mkdir -p "$F"
"$CASTORE" --store "$STORE" mount "$F" &
fgpid=$!
wait_until 30 mounted "$F" || notok "foreground mount: mounted"
expect_eq "foreground mount serves" "$(cat "$F/tree/a.txt" 2>&1)" "hello"
kill -INT "$fgpid"
check "SIGINT: foreground mount unmounts and exits" wait_until 10 pid_gone "$fgpid"
wait "$fgpid"
expect_eq "SIGINT: exit status 0" "$?" 0
check "SIGINT: mount gone" sh -c "! grep -q ' $F fuse.castore ' /proc/mounts"

# a killed daemon: no hang; its watcher (forked before the sandbox) takes
# the mount away
K=$T_TMP/k
mnt "$K" || notok "mount (kill test)"
kpid=$(daemon_pid "$K")
kill -KILL "$kpid"
wait_until 10 pid_gone "$kpid" || notok "killed daemon: gone"
check "killed daemon: access does not hang" timeout 10 stat "$K"
check "killed daemon: the watcher unmounts" wait_until 10 sh -c "! grep -q ' $K fuse.castore ' /proc/mounts"
check "killed daemon: mount gone" sh -c "! grep -q ' $K fuse.castore ' /proc/mounts"

# --- command line errors ------------------------------------------------------
one_line_error() { # NAME CMD...: fails with exactly one line on stderr and nothing on stdout
        local name=$1 out err rc=0
        shift
        out=$("$@" 2>"$T_TMP/err") || rc=$?
        err=$(cat "$T_TMP/err")
        if [ $rc -ne 0 ] && [ -z "$out" ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && [ -n "$err" ]; then
                ok "$name"
        else
                printf '# rc=%s stdout=%s stderr=%s\n' "$rc" "$out" "$err"
                notok "$name"
        fi
}
mkdir -p "$T_TMP/e"
one_line_error "mount: missing mountpoint" cs mount
one_line_error "mount: bad flag" cs mount "$T_TMP/e" --bogus
one_line_error "mount: bad --passthrough" cs mount "$T_TMP/e" --passthrough=maybe
help_ok() { # COMMAND: "castore COMMAND --help" exits 0 with its usage on stdout
        local out
        out=$("$CASTORE" "$1" --help) && grep -q "^Usage: castore .* $1 " <<<"$out"
}
for c in mount umount virtiofs import ls cat export verify nar path-info; do
        check "castore $c --help: usage on stdout, exit 0" help_ok "$c"
done
check "castore help mount: exit 0" sh -c "'$CASTORE' help mount | grep -q passthrough"
one_line_error "mount: bad --threads" cs mount "$T_TMP/e" --threads 0
one_line_error "mount: mountpoint does not exist" cs mount "$T_TMP/nonexistent"
one_line_error "mount: mountpoint is a file" cs mount "$SRC/single"
one_line_error "mount: no store" "$CASTORE" --store "$T_TMP/nostore" mount "$T_TMP/e" --daemon
one_line_error "umount: not a mount" cs umount "$T_TMP/e"
check "nothing left mounted" sh -c "! grep -q ' $T_TMP/e ' /proc/mounts"

exit 0
