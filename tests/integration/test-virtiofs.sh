#!/bin/bash
# End-to-end virtiofs: one "castore virtiofs" daemon serves a store to
# several QEMU guests in turn (Debian's stock kernel, busybox initramfs,
# TCG).  Guest A runs every check, reboots and mounts again; guest B is
# killed (SIGKILL) in the middle of reading; guest C runs every check on
# the same daemon; guest E reads a blob damaged under the running daemon.  Also: the vhost-user socket against a hostile client,
# a scripted front-end (vm/vhost_front.py: parallel requests, guest memory
# shrunk under the daemon, a second connection, GET_VRING_BASE,
# SET_MEM_TABLE and SIGTERM with requests in flight), --once, stale sockets
# and SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$SRC_DIR/tests/integration/vm/vm.sh"

VM_OK=1
vm_prepare || VM_OK=0

S=$T_TMP/store
SOCK=$T_TMP/vfs.sock
TREE=$T_TMP/tree
REAL=/usr/include/linux
cas() { "$CASTORE" --store "$S" "$@"; }

# ---- the tree the guests check
mkdir -p "$TREE"/{dir,bin,names,wide}
printf 'hello\n' > "$TREE/file"
printf 'hello\n' > "$TREE/dir/file-copy"
: > "$TREE/emptyfile"
cp /bin/busybox "$TREE/bin/busybox"
cp /bin/busybox "$TREE/busybox.copy" && chmod 644 "$TREE/busybox.copy"
printf '#!/bin/sh\necho script-ok\n' > "$TREE/bin/script.sh" && chmod 755 "$TREE/bin/script.sh"
ln -s file "$TREE/link"
ln -s /nix/store/somewhereelse "$TREE/abslink"
ln -s dir "$TREE/dirlink"
for n in B a a.b a-b Z _x 10 9 .hidden "$(printf 'caf\351')" "$(printf '\303\251t\303\251')" "$(printf '\377\376')" \
        "$(printf 'sp ace')" "$(printf 'x\001y')"; do
        printf '%s\n' other > "$TREE/names/$n"
done
printf 'latin1' > "$TREE/names/$(printf 'caf\351')"
printf 'utf8' > "$TREE/names/$(printf '\303\251t\303\251')"
E_WIDE=3000
for i in $(seq 1 $E_WIDE); do : > "$TREE/wide/entry-with-a-longish-name-$i"; done
head -c $((64 * 1024 * 1024 + 12345)) /dev/urandom > "$TREE/big"

cas import "$TREE" --name t > "$T_TMP/import-t.out" 2>&1 || { cat "$T_TMP/import-t.out"; notok "import the test tree"; exit 1; }
cas import "$REAL" --name real > "$T_TMP/import-real.out" 2>&1 || { cat "$T_TMP/import-real.out"; notok "import $REAL"; exit 1; }
ok "import trees into the store"

# ---- expected values, computed on the host
digest_of() { # PATH-IN-STORE NAME: the b3 digest column of "castore ls -l"
        cas ls -l "$1" | awk -v n="$2" '$1 != "link" && $NF == n { print $3 }'
}
E_FILE_DIGEST=$(digest_of t file)
E_DIR_DIGEST=$(digest_of t dir)
E_ROOT_DIGEST=$(cas ls -l | awk '$NF == "t" { print $3 }')
E_NAMES=$(python3 - "$TREE/names" <<'EOF'
import os, sys
def esc(b):
    return "".join(chr(c) if 0x20 < c < 0x7f and c != 0x5c else "\\x%02x" % c for c in b)
print(" ".join(esc(n) for n in sorted(os.listdir(os.fsencode(sys.argv[1])))) + " ")
EOF
)
E_NAMES_COUNT=$(ls -A "$TREE/names" | wc -l)
# the root lists store path basenames and named roots merged by name
E_ROOTS="$({ awk '{sub("/nix/store/", "", $3); print $3}' "$T_TMP/import-t.out" "$T_TMP/import-real.out"
        printf 'real\nt\n'; } | LC_ALL=C sort | tr '\n' ' ')"
E_BIG_SHA=$(sha256sum "$TREE/big" | cut -d' ' -f1)
E_REAL_COUNT=$(cd "$REAL" && find . | wc -l)
E_REAL_SHA=$(cd "$REAL" && find . -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -d' ' -f1)
for v in E_FILE_DIGEST E_DIR_DIGEST E_ROOT_DIGEST; do
        [ -n "${!v}" ] || { notok "expected value $v from castore ls -l"; exit 1; }
done

# guest script: the expected values, then the checks
guest_script() { # G OUT [EXTRA BODY]
        {
                printf 'G=%s\n' "$1"
                for v in E_FILE_DIGEST E_DIR_DIGEST E_ROOT_DIGEST E_NAMES E_NAMES_COUNT E_BIG_SHA E_REAL_COUNT \
                        E_REAL_SHA E_WIDE E_ROOTS; do
                        printf "%s='%s'\n" "$v" "${!v}"
                done
                cat "$3"
        } > "$2"
}

# Passes a guest's ok/not ok lines on and checks it got to the end.
report_guest() { # NAME G QEMU-RC
        local log=$VM_DIR/$1/out.log
        grep -E "^(ok|not ok) - |^#" "$log"
        t_count ok "$(grep -c '^ok - ' "$log")"
        t_count notok "$(grep -c '^not ok - ' "$log")"
        T_FAILED=$((T_FAILED + $(grep -c '^not ok - ' "$log")))
        if grep -q '^CHECKS-DONE' "$log" && [ "$3" = 0 ]; then ok "$2: guest ran all checks"
        else vm_show "$1"; notok "$2: guest ran all checks (qemu rc $3)"; fi
}

# ---- the daemon
"$CASTORE" --store "$S" -v virtiofs "$SOCK" --list-root > "$T_TMP/daemon.log" 2>&1 &
DPID=$!
at_exit "kill $DPID"
check "daemon listens on its socket" wait_until 30 test -S "$SOCK"

# hostile front-end: garbage on the socket closes that connection only
check "vhost-user socket survives malformed messages" python3 - "$SOCK" <<'EOF'
import socket, struct, sys
def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.settimeout(5)
    return s
s = conn()
s.sendall(struct.pack("<III", 1, 2, 0))      # bad version: the daemon hangs up
assert s.recv(64) == b"", "expected the connection to be closed"
s = conn()
s.sendall(struct.pack("<III", 5, 1, 100000))  # oversized payload
assert s.recv(64) == b""
s = conn()
s.sendall(struct.pack("<III", 1, 1, 0))       # GET_FEATURES still answered
req, flags, size = struct.unpack("<III", s.recv(12))
feat, = struct.unpack("<Q", s.recv(8))
assert req == 1 and flags == 5 and size == 8, (req, flags, size)
want = (1 << 32) | (1 << 28) | (1 << 29) | (1 << 30)
assert feat & want == want, hex(feat)
s.sendall(struct.pack("<III", 17, 1, 0))      # GET_QUEUE_NUM: hiprio + 1 request queue
req, flags, size = struct.unpack("<III", s.recv(12))
assert struct.unpack("<Q", s.recv(8))[0] == 2
s.close()
print("hostile front-end handled")
EOF

# ---- a scripted front-end against a daemon of its own (its log may
# rightly say that a ring broke)
FRONT="python3 $SRC_DIR/tests/integration/vm/vhost_front.py"
SOCK2=$T_TMP/vfs2.sock
"$CASTORE" --store "$S" -v virtiofs "$SOCK2" > "$T_TMP/daemon2.log" 2>&1 &
DPID2=$!
at_exit "kill $DPID2"
check "front-end: daemon listens on its socket" wait_until 30 test -S "$SOCK2"
check "front-end: read through the rings" $FRONT "$SOCK2" read t/big "$TREE/big"
check "front-end: 32 reads of 1 MiB at once, each byte and used length right" \
        $FRONT "$SOCK2" parallel t/big "$TREE/big" 32 1048576 2
check "front-end: GET_VRING_BASE with requests in flight, then restart at the base and a new INIT" \
        $FRONT "$SOCK2" vring-base t/big "$TREE/big"
check "front-end: SET_MEM_TABLE with requests in flight: all answered" \
        $FRONT "$SOCK2" remap t/big "$TREE/big"
check "front-end: a second connection is refused at once, the first still served" \
        $FRONT "$SOCK2" second t/big "$TREE/big"
check "front-end: disconnects with requests in flight and mid-message" $FRONT "$SOCK2" drop t/big "$TREE/big"
check "front-end: guest memory shrunk under the daemon (SIGBUS) breaks the ring, not the daemon" \
        $FRONT "$SOCK2" shrink t/big "$TREE/big" "$DPID2"
check "front-end: SIGTERM with requests in flight closes the connection" \
        $FRONT "$SOCK2" sigterm t/big "$TREE/big" "$DPID2"
rc=0
wait_until 10 pid_gone "$DPID2" || { kill -KILL "$DPID2"; rc=timeout; }
wait "$DPID2" || [ "$rc" = timeout ] || rc=$?
expect_eq "front-end: SIGTERM with requests in flight: daemon exits 0" "$rc" 0
check "front-end: SIGTERM: socket removed" test ! -e "$SOCK2"
expect_eq "front-end: the shrunk memory was reported as a broken ring" \
        "$(grep -c 'broke ring' "$T_TMP/daemon2.log")" 1
if grep -qE 'Sanitizer|runtime error' "$T_TMP/daemon2.log"; then
        sed 's/^/# /' "$T_TMP/daemon2.log" | grep -A20 -E 'Sanitizer|runtime error' | head -40
        notok "front-end: daemon log has no sanitizer reports"
else ok "front-end: daemon log has no sanitizer reports"; fi

if [ $VM_OK = 1 ]; then
# ---- guest A: every check, then a reboot within the same QEMU (the
# device is stopped with GET_VRING_BASE, set up again, and the new
# kernel starts a new FUSE session)
cat > "$T_TMP/body-a.sh" <<'EOF'
if [ "$(dd if=/dev/vda bs=6 count=1 2>/dev/null)" = BOOT-2 ]; then
        G=A-after-reboot
        mount -t virtiofs store /mnt && echo "ok - $G: mount again after reboot" || echo "not ok - $G: mount again after reboot"
        [ "$(cat /mnt/t/file)" = hello ] && echo "ok - $G: read after reboot" || echo "not ok - $G: read after reboot"
        [ "$(vmtool readdir /mnt/t/names | wc -l)" = "$E_NAMES_COUNT" ] && echo "ok - $G: readdir after reboot" ||
                echo "not ok - $G: readdir after reboot"
        echo CHECKS-DONE
        exit 0
fi
mount -t virtiofs store /mnt && echo "ok - $G: mount" || echo "not ok - $G: mount"
EOF
cat "$SRC_DIR/tests/integration/vm/checks.sh" >> "$T_TMP/body-a.sh"
echo 'printf BOOT-2 | dd of=/dev/vda 2>/dev/null; sync; touch /tmp/reboot' >> "$T_TMP/body-a.sh"
guest_script A "$T_TMP/guest-a.sh" "$T_TMP/body-a.sh"
truncate -s 1M "$T_TMP/state-a.img"
start=$SECONDS
rc=0
VM_REBOOT=1 vm_run A "$SOCK" "$T_TMP/guest-a.sh" -drive "file=$T_TMP/state-a.img,format=raw,if=virtio" || rc=$?
echo "# guest A (two boots) took $((SECONDS - start))s"
report_guest A A $rc
expect_eq "guest A rebooted once" "$(grep -c '^CHECKS-DONE' "$VM_DIR/A/out.log")" 2

# ---- guest B: killed while reading the large file
# (each pass drops the guest's page cache first, so that every pass reads
# through the daemon; "READ 1" means one whole pass went through)
cat > "$T_TMP/body-b.sh" <<'EOF'
mount -t virtiofs store /mnt || exit 1
n=0
while :; do
        echo 3 > /proc/sys/vm/drop_caches
        cat /mnt/t/big > /dev/null || { echo "READ FAILED"; exit 1; }
        n=$((n + 1))
        echo "READ $n"
done
EOF
gone_count() { grep -cE 'front-end disconnected|closing the connection' "$T_TMP/daemon.log"; }
guest_script B "$T_TMP/guest-b.sh" "$T_TMP/body-b.sh"
gone=$(gone_count)
vm_start B "$SOCK" "$T_TMP/guest-b.sh"
if vm_wait_for B "READ 1" 300; then
        vm_kill
        ok "guest B killed in the middle of a read"
else
        vm_kill
        vm_show B
        notok "guest B killed in the middle of a read (it never read the file through)"
fi
# the daemon has seen the connection go before it is asked to live on
check "daemon saw guest B's connection go" wait_until 30 eval '[ "$(gone_count)" -gt "$gone" ]'
check "daemon alive after the killed guest" kill -0 "$DPID"

# ---- guest C: the same checks against the same daemon
{ echo 'mount -t virtiofs store /mnt && echo "ok - $G: mount" || echo "not ok - $G: mount"'
  cat "$SRC_DIR/tests/integration/vm/checks.sh"; } > "$T_TMP/body-c.sh"
guest_script C "$T_TMP/guest-c.sh" "$T_TMP/body-c.sh"
start=$SECONDS
rc=0
vm_run C "$SOCK" "$T_TMP/guest-c.sh" || rc=$?
echo "# guest C took $((SECONDS - start))s"
report_guest C C $rc
expect_eq "daemon saw three guests connect" "$(grep -c 'front-end connected' "$T_TMP/daemon.log")" 6

# ---- guest E: a blob damaged on the host under the running daemon: the
# group with the flipped byte reads as an error in the guest, a range
# elsewhere in the same file reads right (every READ is verified)
mkdir -p "$T_TMP/dmg"
head -c $((3 << 20)) /dev/urandom > "$T_TMP/dmg/file3m"
cas import "$T_TMP/dmg" --name dmg > /dev/null 2>&1 || notok "import the file to damage"
DMG_BLOB=$(find "$S/blobs" -type f -size 3072k ! -name '*.ob' | head -1)
chmod u+w "$DMG_BLOB" && printf 'X' | dd of="$DMG_BLOB" bs=1 seek=2000000 conv=notrunc 2>/dev/null
E_RANGE_SHA=$(dd if="$T_TMP/dmg/file3m" bs=65536 skip=1 count=2 2>/dev/null | sha256sum | cut -d' ' -f1)
cat > "$T_TMP/body-e.sh" <<EOF
mount -t virtiofs store /mnt || exit 1
if dd if=/mnt/dmg/file3m of=/dev/null bs=4096 skip=488 count=1 2>/dev/null; then
        echo "not ok - E: the damaged group reads as an error"
else
        echo "ok - E: the damaged group reads as an error"
fi
got=\$(dd if=/mnt/dmg/file3m bs=65536 skip=1 count=2 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "\$got" = "$E_RANGE_SHA" ] && echo "ok - E: a range away from the damage reads right" ||
        echo "not ok - E: a range away from the damage reads right"
echo CHECKS-DONE
EOF
guest_script E "$T_TMP/guest-e.sh" "$T_TMP/body-e.sh"
rc=0
vm_run E "$SOCK" "$T_TMP/guest-e.sh" || rc=$?
report_guest E E $rc
else
        skip "virtiofs guests" "$VM_SKIP"
fi

# ---- SIGTERM: clean exit, socket removed, also with a guest connected
# and reading (guest D)
D_RUNNING=0
if [ $VM_OK = 1 ]; then
        guest_script D "$T_TMP/guest-d.sh" "$T_TMP/body-b.sh"
        vm_start D "$SOCK" "$T_TMP/guest-d.sh"
        if vm_wait_for D "READ 1" 300; then D_RUNNING=1
        else vm_show D; notok "guest D reading when the daemon gets SIGTERM"; fi
fi
kill -TERM "$DPID"
rc=0
wait_until 10 pid_gone "$DPID" || { kill -KILL "$DPID"; rc=timeout; }
wait "$DPID" || [ "$rc" = timeout ] || rc=$?
[ $VM_OK = 1 ] && vm_kill
expect_eq "SIGTERM: daemon exits 0 within 10 s$([ $D_RUNNING = 1 ] && echo ', with a guest reading')" "$rc" 0
check "SIGTERM: socket removed" test ! -e "$SOCK"
if grep -qE 'Sanitizer|runtime error|broke ring|cannot|Failed' "$T_TMP/daemon.log"; then
        sed 's/^/# /' "$T_TMP/daemon.log" | tail -20
        notok "daemon log has no errors"
else ok "daemon log has no errors"; fi

# ---- --once over a stale socket file; refuses to replace a regular file
rm -f "$SOCK"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$SOCK"
"$CASTORE" --store "$S" -v virtiofs "$SOCK" --once > "$T_TMP/once.log" 2>&1 &
OPID=$!
check "--once: daemon listens" wait_until 30 grep -q listening "$T_TMP/once.log"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.close()' "$SOCK"
rc=0
timeout 10 tail --pid="$OPID" -f /dev/null || { kill "$OPID"; rc=timeout; }
wait "$OPID" 2>/dev/null || [ "$rc" = timeout ] || rc=$?
expect_eq "--once: exits after one connection (over a stale socket)" "$rc" 0
: > "$T_TMP/regular"
check "refuses to replace a non-socket file" bash -c "! '$CASTORE' --store '$S' virtiofs '$T_TMP/regular' --once"

exit 0
