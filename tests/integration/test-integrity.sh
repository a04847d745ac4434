#!/bin/bash
# Integrity of a running mount: a store on a loop-mounted ext4 image, a
# byte of a blob flipped inside the image file itself (as media corruption
# would: no mtime or ctime changes), caches dropped.  Reads of the damaged
# 16 KiB group fail with EIO through the mount that was already serving the
# file (default mode and --passthrough=off), reads elsewhere in the file
# still return the right bytes, `castore cat` fails, and after a repair and
# re-import the same mount serves the right bytes again.  Also checks what
# a confined daemon's /proc status says.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { skip "integrity" "needs root (loop device, drop_caches)"; exit 0; }
for tool in mkfs.ext4 debugfs losetup python3; do
        have "$tool" || { skip "integrity" "$tool is missing"; exit 0; }
done
[ -e /dev/fuse ] || { skip "integrity" "no /dev/fuse"; exit 0; }

IMG=$T_TMP/store.img
LOOPMNT=$T_TMP/loop
STORE=$LOOPMNT/store
SRC=$T_TMP/src
M=$T_TMP/mnt
cs() { "$CASTORE" --store "$STORE" "$@"; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# read_range FILE OFFSET LENGTH: the bytes' sha256, or the errno name
read_range() {
        python3 - "$@" <<'EOF'
import errno, hashlib, os, sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        data = b''
        while len(data) < n:  # a read stops short before a failing page
            chunk = os.pread(fd, n - len(data), off + len(data))
            if not chunk:
                break
            data += chunk
        print(hashlib.sha256(data).hexdigest())
    finally:
        os.close(fd)
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}
want_range() { python3 -c 'import hashlib,sys; d=open(sys.argv[1],"rb").read()[int(sys.argv[2]):int(sys.argv[2])+int(sys.argv[3])]; print(hashlib.sha256(d).hexdigest())' "$@"; }

truncate -s 256M "$IMG"
mkfs.ext4 -q -F -b 4096 "$IMG" || { notok "mkfs.ext4 of the store image"; exit 0; }
mkdir -p "$LOOPMNT" "$SRC/data" "$M"
if ! mount -o loop "$IMG" "$LOOPMNT" 2>"$T_TMP/loop.err"; then
        skip "integrity" "cannot loop-mount an image: $(head -1 "$T_TMP/loop.err")"
        exit 0
fi
at_exit "umount -l '$LOOPMNT'"
python3 -c 'import os,sys; sys.stdout.buffer.write(os.urandom(3 << 20))' >"$SRC/data/file3m"
check "import of a 3 MB file into the image's store" cs import "$SRC/data"
BLOB=$(find "$STORE/blobs" -type f -size 3072k ! -name '*.ob' | head -1)
[ -n "$BLOB" ] || { notok "finding the blob file"; exit 0; }
check "the blob's outboard was written at import" test -s "$BLOB.ob"

# flip_in_image OFFSET: flips one byte of the blob file inside the image,
# through the block map (the file system never sees a write)
flip_in_image() {
        local off=$1 rel blk
        rel=${BLOB#"$LOOPMNT"}
        blk=$(debugfs -R "bmap $rel $((off / 4096))" "$IMG" 2>/dev/null | tail -1)
        [ -n "$blk" ] && [ "$blk" -gt 0 ] 2>/dev/null || return 1
        python3 - "$IMG" $((blk * 4096 + off % 4096)) <<'EOF'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x55]))
EOF
}

BAD=2000000 # in group 122 (bytes 1998848..2015231)
for mode in default off; do
        opts=()
        [ $mode = off ] && opts=(--passthrough=off)
        cs mount "$M" --daemon "${opts[@]}" || { notok "mount ($mode)"; continue; }
        F=$M/data/file3m
        if [ $mode = default ]; then
                expect_eq "$mode: whole file reads before the damage" "$(read_range "$F" 0 $((3 << 20)))" \
                        "$(want_range "$SRC/data/file3m" 0 $((3 << 20)))"
                flip_in_image $BAD || { notok "flipping a byte inside the image"; break; }
        fi
        drop_caches
        expect_eq "$mode: the damaged group reads as EIO through the running mount" \
                "$(read_range "$F" $((BAD - 100)) 200)" EIO
        expect_eq "$mode: a whole-file read fails" "$(read_range "$F" 0 $((3 << 20)))" EIO
        expect_eq "$mode: a range far from the damage still reads right" "$(read_range "$F" 65536 131072)" \
                "$(want_range "$SRC/data/file3m" 65536 131072)"
        expect_eq "$mode: the range right after the damaged group reads right" \
                "$(read_range "$F" 2015232 16384)" "$(want_range "$SRC/data/file3m" 2015232 16384)"
        if [ $mode = off ]; then
                check "castore cat fails on the damaged blob" sh -c "! '$CASTORE' --store '$STORE' cat data/file3m >/dev/null 2>&1"
                # repair: verify --repair removes the rotten blob, re-import stores it again
                cs verify --repair >/dev/null 2>&1
                check "re-import after the repair" cs import "$SRC/data"
                drop_caches
                expect_eq "off: after the re-import the same mount serves the right bytes" \
                        "$(read_range "$F" 0 $((3 << 20)))" "$(want_range "$SRC/data/file3m" 0 $((3 << 20)))"
        fi
        cs umount "$M" || notok "umount ($mode)"
        for ((i = 0; i < 100; i++)); do grep -q " $M fuse" /proc/mounts || break; sleep 0.1; done
done

# --- a confined daemon -------------------------------------------------------
status_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mpid() { pgrep -f -- "mount $1 --daemon" | head -1; }
if cs mount "$M" --daemon; then
        P=$(mpid "$M")
        expect_eq "mount daemon: NoNewPrivs" "$(status_of "$P" NoNewPrivs)" 1
        expect_eq "mount daemon: seccomp filter" "$(status_of "$P" Seccomp)" 2
        expect_eq "mount daemon: no effective capabilities" "$(status_of "$P" CapEff)" 0000000000000000
        expect_eq "mount daemon: no permitted capabilities" "$(status_of "$P" CapPrm)" 0000000000000000
        check "mount daemon: still serves" cmp "$M/data/file3m" "$SRC/data/file3m"
        expect_eq "a second mount on the same directory is refused" \
                "$(cs mount "$M" --daemon >/dev/null 2>&1; echo $?)" 1
        cs umount "$M" || notok "umount (confined)"
        for ((i = 0; i < 100; i++)); do grep -q " $M fuse" /proc/mounts || break; sleep 0.1; done
fi
if cs mount "$M" --daemon --sandbox=none; then
        expect_eq "--sandbox=none: no seccomp filter" "$(status_of "$(mpid "$M")" Seccomp)" 0
        cs umount "$M"
        for ((i = 0; i < 100; i++)); do grep -q " $M fuse" /proc/mounts || break; sleep 0.1; done
fi
# $(castore mount --daemon) returns: the daemon keeps no inherited pipe open
check "mount --daemon | cat returns" timeout 20 sh -c "'$CASTORE' --store '$STORE' mount '$M' --daemon | cat"
check "umount after the piped mount" cs umount "$M"
for ((i = 0; i < 100; i++)); do grep -q " $M fuse" /proc/mounts || break; sleep 0.1; done
# castore umount takes down castore mounts only
if have squashfuse && have mksquashfs; then
        mkdir -p "$T_TMP/sq" "$T_TMP/sqm"
        echo hi >"$T_TMP/sq/f"
        mksquashfs "$T_TMP/sq" "$T_TMP/sq.img" -quiet >/dev/null 2>&1
        if squashfuse "$T_TMP/sq.img" "$T_TMP/sqm" 2>/dev/null; then
                at_exit "umount -l '$T_TMP/sqm'"
                check "castore umount refuses another FUSE filesystem" sh -c "! '$CASTORE' umount '$T_TMP/sqm' 2>/dev/null"
                check "the other FUSE filesystem is still mounted" grep -q " $T_TMP/sqm fuse" /proc/mounts
        else
                skip "umount of another FUSE filesystem" "squashfuse cannot mount here"
        fi
else
        skip "umount of another FUSE filesystem" "squashfuse is not installed (scripts/deps.sh bench)"
fi
# --- the virtiofs daemon: socket mode, confinement ----------------------------
vfs_check() { # LABEL EXPECTED-MODE [ARGS...]
        local label=$1 mode=$2 sock=$T_TMP/vfs.sock pid
        shift 2
        "$CASTORE" --store "$STORE" virtiofs "$sock" "$@" 2>"$T_TMP/vfs.err" &
        pid=$!
        if ! wait_until 20 test -S "$sock"; then
                notok "$label: the daemon listens"
                kill "$pid" 2>/dev/null
                return
        fi
        expect_eq "$label: socket mode" "$(stat -c %a "$sock")" "$mode"
        expect_eq "$label: daemon NoNewPrivs" "$(status_of "$pid" NoNewPrivs)" 1
        expect_eq "$label: daemon seccomp filter" "$(status_of "$pid" Seccomp)" 2
        expect_eq "$label: daemon has no capabilities" "$(status_of "$pid" CapEff)" 0000000000000000
        kill -TERM "$pid"
        wait "$pid"
        expect_eq "$label: SIGTERM: exit status 0" "$?" 0
        check "$label: socket removed (the sandbox allows that much)" test ! -e "$sock"
}
vfs_check "virtiofs" 600
vfs_check "virtiofs --socket-group" 660 --socket-group "$(id -gn)"
# a relative --store works for a daemon (it leaves its working directory
# before the sandbox is set up around the store)
if (cd "$LOOPMNT" && "$CASTORE" --store store mount "$M" --daemon); then
        check "relative --store: the confined daemon serves" cmp "$M/data/file3m" "$SRC/data/file3m"
        cs umount "$M"
        wait_until 10 sh -c "! grep -q ' $M fuse' /proc/mounts"
else
        notok "mount --daemon with a relative --store"
fi
# --- messages that say what is wrong -------------------------------------------
if cs mount "$M" --daemon --uid 1234 --gid 1234 2>"$T_TMP/uid.err"; then
        check "--uid/--gid without --allow-other warns" grep -q "without --allow-other" "$T_TMP/uid.err"
        cs umount "$M"
        wait_until 10 sh -c "! grep -q ' $M fuse' /proc/mounts"
else
        notok "mount with --uid/--gid"
fi
if have runuser && have fusermount3; then
        # a mountpoint the user can reach (the test's own directory is 0700)
        NM=$(mktemp -d /tmp/castore-notmine.XXXXXX)
        chmod 755 "$NM"
        at_exit "rmdir '$NM'"
        runuser -u nobody -- "$CASTORE" --store memory:// mount "$NM" >/dev/null 2>"$T_TMP/nobody.err"
        rc=$?
        expect_eq "non-root mount that fusermount3 refuses: exit status 1" "$rc" 1
        check "non-root mount failure says fusermount3 could not mount, not an I/O error" \
                sh -c "grep -q 'could not mount' '$T_TMP/nobody.err' && ! grep -q 'Input/output error' '$T_TMP/nobody.err'"
else
        skip "non-root mount message" "runuser or fusermount3 is missing"
fi
exit 0
