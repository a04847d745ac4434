#!/bin/bash
# castore on a system: --version and every command's --help, the man pages
# and the bash completion (every option documented), mount.castore as
# mount(8) runs it (and mount -t castore / an fstab line through the real
# mount(8)), castore mount -o, systemd units (systemd-analyze verify),
# sd_notify readiness, a detached daemon's log reaching syslog, virtiofs
# --daemon / a second daemon refused / --print-capabilities, read-only use
# of a store by a user who cannot write it, and meson install.
. "$(dirname "$0")/lib.sh"

STORE=$T_TMP/store
SRC=$T_TMP/src
BIN=$T_TMP/bin
cs() { "$CASTORE" --store "$STORE" "$@"; }
mkdir -p "$SRC/tree/sub" "$SRC/rot" "$BIN"
printf 'hello\n' >"$SRC/tree/a.txt"
printf 'sub\n' >"$SRC/tree/sub/file"
printf 'rot me, please\n' >"$SRC/rot/victim"
head -c 100000 /dev/urandom >"$SRC/tree/big"
ln -s "$CASTORE" "$BIN/mount.castore"
ln -s "$CASTORE" "$BIN/castore-virtiofs"
cs import "$SRC/tree" --name tree >/dev/null && cs import "$SRC/rot" --name rot --no-pack >/dev/null ||
        { notok "importing the fixture"; exit 1; }

# dgram_listen SOCKET OUT [UNTIL]: a unix datagram socket (as systemd's
# notify socket or /dev/log) whose datagrams go to OUT, one a line; stops
# after a datagram containing UNTIL, or after 120 s.  Returns once bound.
dgram_listen() {
        python3 - "$1" "$2" "${3:-}" <<'PY' &
import socket, sys, time
path, out, until = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(1)
end = time.time() + 120
with open(out, "a") as f:
    while time.time() < end:
        try:
            d = s.recv(65536).decode(errors="replace")
        except socket.timeout:
            continue
        f.write(d.replace("\n", "\\n") + "\n")
        f.flush()
        if until and until in d:
            break
PY
        local pid=$!
        at_exit "kill $pid"
        wait_until 10 test -S "$1"
}

# --- help, version, man pages, completion ------------------------------------
check "castore --version" bash -c "'$CASTORE' --version | grep -qx 'castore [0-9.]*'"
COMMANDS=$("$CASTORE" help | awk '/^  [a-z]/ { print $1 }')
MAN1=$(MANWIDTH=200 man -l "$SRC_DIR/man/castore.1" 2>&1)
MAN8=$(MANWIDTH=200 man -l "$SRC_DIR/man/mount.castore.8" 2>&1)
if grep -q "castore mount MOUNTPOINT" <<<"$MAN1"; then ok "castore(1) renders"; else notok "castore(1) renders"; fi
if grep -q "list_root" <<<"$MAN8" && grep -q "fstab" <<<"$MAN8"; then ok "mount.castore(8) renders"
else notok "mount.castore(8) renders"; fi
warn=$(groff -ww -z -man "$SRC_DIR/man/castore.1" "$SRC_DIR/man/mount.castore.8" 2>&1)
expect_eq "man pages: no groff warnings" "$warn" ""
missing=""
for c in $COMMANDS; do
        "$CASTORE" "$c" --help >/dev/null 2>&1 && "$CASTORE" "$c" -h >/dev/null 2>&1 || missing="$missing $c(--help)"
        grep -qE "^   castore +$c( |$)" <<<"$MAN1" || missing="$missing $c(man)"
done
expect_eq "every command: --help and -h exit 0, a section in castore(1)" "$missing" ""
# every long option of every command's getopt table, in its --help and in
# castore(1); the shared ones (cli.h) in "castore help"
missing=""
for f in "$SRC_DIR"/src/cli/cmd-*.c; do
        names=$(sed -n 's/^ *\.name = "\([a-z-]*\)",/\1/p' "$f")
        help=$(for n in $names; do "$CASTORE" "$n" --help; done 2>&1)
        for o in $(grep -o '{ "[a-z-]*", \(no\|required\|optional\)_argument' "$f" | cut -d'"' -f2); do
                grep -q -- "--$o\b" <<<"$help" || missing="$missing $(basename "$f"):--$o(help)"
                grep -q -- "--$o\b" <<<"$MAN1" || missing="$missing $(basename "$f"):--$o(man)"
        done
done
for o in $(grep -o '{ "[a-z-]*", \(no\|required\|optional\)_argument' "$SRC_DIR/src/cli/cli.h" | cut -d'"' -f2); do
        grep -q -- "--$o\b" <<<"$("$CASTORE" help; for c in $COMMANDS; do "$CASTORE" "$c" --help; done)" ||
                missing="$missing cli.h:--$o(help)"
        grep -q -- "--$o\b" <<<"$MAN1" || missing="$missing cli.h:--$o(man)"
done
expect_eq "every option in --help and castore(1)" "$missing" ""

# complete WORDS...: what the completion offers for the last word
complete_words() {
        bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
                 _castore; printf "%s\n" "${COMPREPLY[@]}"' _ "$SRC_DIR/completions/castore.bash" "$@" 2>&1
}
expect_eq "completion: commands" "$(complete_words castore mo)" "mount"
expect_eq "completion: options of mount" "$(complete_words castore mount --pass)" "--passthrough"
expect_eq "completion: option values" "$(complete_words castore mount --passthrough o | sort | tr '\n' ' ')" "off on "
missing=""
for c in $COMMANDS; do
        complete_words castore "$c" | grep -qx "$c" || missing="$missing $c"
done
expect_eq "completion: every command" "$missing" ""
missing=""
for f in "$SRC_DIR"/src/cli/cmd-*.c; do
        offered=$(for n in $(sed -n 's/^ *\.name = "\([a-z-]*\)",/\1/p' "$f"); do complete_words castore "$n" --; done)
        for o in $(grep -o '{ "[a-z-]*", \(no\|required\|optional\)_argument' "$f" | cut -d'"' -f2); do
                grep -qx -- "--$o" <<<"$offered" || missing="$missing $(basename "$f"):--$o"
        done
done
expect_eq "completion: every option of every command" "$missing" ""

# under systemd stderr is the journal ($JOURNAL_STREAM): levels as <N> prefixes
: >"$T_TMP/journal"
js=$(stat -c '%d:%i' "$T_TMP/journal")
JOURNAL_STREAM=$js cs ls no-such-root 2>>"$T_TMP/journal" >/dev/null
if grep -q '^<3>[^<]' "$T_TMP/journal" && ! grep -q 'castore: ' "$T_TMP/journal"; then
        ok "stderr that is the journal: <level> prefixes"
else sed 's/^/# /' "$T_TMP/journal"; notok "stderr that is the journal: <level> prefixes"; fi

# --- units and the vhost-user description -----------------------------------
for f in castore-daemon.service castore-virtiofs@.service 50-castore-virtiofs.json; do
        [ -f "$BUILD_DIR/systemd/$f" ] || notok "$f is built"
done
check "vhost-user JSON is valid and says type fs" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["type"] == "fs" and isinstance(d["features"], list) and d["binary"].endswith("/castore-virtiofs"), d
' "$BUILD_DIR/systemd/50-castore-virtiofs.json"
if have systemd-analyze; then
        U=$T_TMP/units
        mkdir -p "$U"
        for f in castore-daemon.service castore-virtiofs@.service; do
                sed "s|^ExecStart=[^ ]*/castore|ExecStart=$CASTORE|" "$BUILD_DIR/systemd/$f" >"$U/$f"
        done
        cp "$SRC_DIR/systemd/nix-store.mount.example" "$U/nix-store.mount"
        cp "$U/castore-virtiofs@.service" "$U/castore-virtiofs@vm1.sock.service"
        out=$(cd "$U" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
                castore-daemon.service castore-virtiofs@vm1.sock.service nix-store.mount 2>&1)
        rc=$?
        # offline, verify may still grumble about the host's own units
        out=$(grep -i 'castore\|nix-store' <<<"$out")
        if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: the units"; else
                printf '# %s\n' "$out"; notok "systemd-analyze verify: the units (exit $rc)"; fi
else
        skip "systemd-analyze verify: the units" "systemd-analyze is not installed"
fi

# --- virtiofs ---------------------------------------------------------------
caps=$("$BIN/castore-virtiofs" --print-capabilities)
check "castore-virtiofs --print-capabilities: vhost-user JSON" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d == {"type": "fs", "features": []}, d
' "$caps"
VS=$T_TMP/vfs.sock
if cs virtiofs --daemon "$VS" && [ -S "$VS" ]; then ok "virtiofs --daemon returns with the socket listening"
else notok "virtiofs --daemon returns with the socket listening"; fi
VPID=$(fuser "$VS.lock" 2>/dev/null | tr -d ' ')
[ -n "$VPID" ] && at_exit "kill $VPID"
out=$(cs virtiofs "$VS" --once 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "another castore virtiofs serves" <<<"$out"; then ok "a second virtiofs on a served socket is refused"
else printf '# %s\n' "$out"; notok "a second virtiofs on a served socket is refused (exit $rc)"; fi
check "the first daemon still serves its socket" python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$VS"
if [ -n "$VPID" ]; then
        kill "$VPID"
        if wait_until 20 pid_gone "$VPID" && [ ! -e "$VS" ] && [ ! -e "$VS.lock" ]; then
                ok "SIGTERM: the daemon removes its socket and lock"
        else notok "SIGTERM: the daemon removes its socket and lock"; fi
else
        notok "finding the virtiofs daemon by its lock (fuser)"
fi
# a socket some other program serves
OS=$T_TMP/other.sock
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); time.sleep(60)' "$OS" &
OPID=$!
at_exit "kill $OPID"
wait_until 10 test -S "$OS"
out=$(cs virtiofs "$OS" --once 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "another program serves" <<<"$out"; then ok "virtiofs refuses a socket another program serves"
else printf '# %s\n' "$out"; notok "virtiofs refuses a socket another program serves (exit $rc)"; fi
kill $OPID; wait $OPID 2>/dev/null
# now a stale socket file: replaced
if cs virtiofs --daemon "$OS"; then
        ok "a stale socket file is replaced"
        P=$(fuser "$OS.lock" 2>/dev/null | tr -d ' ')
        [ -n "$P" ] && kill "$P" && wait_until 20 pid_gone "$P"
else notok "a stale socket file is replaced"; fi

# socket activation: a listening socket on fd 3 with LISTEN_PID/LISTEN_FDS
AS=$T_TMP/activated.sock
NS=$T_TMP/notify-act.sock
dgram_listen "$NS" "$T_TMP/notify-act.out" READY=1
NOTIFY_SOCKET=$NS python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
os.dup2(s.fileno(), 3)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], [sys.argv[2], "--store", sys.argv[3], "-v", "virtiofs"])' \
        "$AS" "$CASTORE" "$STORE" >"$T_TMP/activated.log" 2>&1 &
APID=$!
at_exit "kill $APID"
if wait_until 30 grep -q READY=1 "$T_TMP/notify-act.out" &&
        grep -q "listening on a socket handed over" "$T_TMP/activated.log"; then
        ok "virtiofs: systemd socket activation (LISTEN_FDS), READY=1"
else sed 's/^/# /' "$T_TMP/activated.log" | tail -5; notok "virtiofs: systemd socket activation (LISTEN_FDS), READY=1"; fi
kill $APID; wait_until 20 pid_gone $APID
[ -S "$AS" ] && ok "virtiofs: a socket handed over is left to its owner" ||
        notok "virtiofs: a socket handed over is left to its owner"

# --- sd_notify --------------------------------------------------------------
# notify_check NAME READY-CHECK ARGS...: castore ARGS runs with NOTIFY_SOCKET; once it
# sends READY=1, READY-CHECK must already hold.  CMD is then stopped.
notify_check() {
        local name=$1 ready=$2 pid; shift 2
        local sock=$T_TMP/notify.$RANDOM out=$T_TMP/notify.out.$RANDOM
        dgram_listen "$sock" "$out" READY=1
        NOTIFY_SOCKET=$sock "$CASTORE" --store "$STORE" "$@" >"$out.log" 2>&1 &
        pid=$!
        if wait_until 60 grep -q READY=1 "$out" && eval "$ready"; then ok "sd_notify: $name says READY=1 once serving"
        else sed 's/^/# /' "$out" "$out.log" | tail; notok "sd_notify: $name says READY=1 once serving"; fi
        kill "$pid" 2>/dev/null
        wait_until 30 pid_gone "$pid" || kill -9 "$pid"
        wait "$pid" 2>/dev/null
}
if [ -c /dev/fuse ]; then
        M=$T_TMP/mnt-notify
        mkdir -p "$M"
        notify_check "castore mount" "grep -q ' $M fuse' /proc/mounts && cat '$M/tree/a.txt' >/dev/null" \
                mount "$M"
else
        skip "sd_notify: castore mount says READY=1 once serving" "/dev/fuse is missing"
fi
notify_check "castore virtiofs" "test -S '$T_TMP/n.sock'" virtiofs "$T_TMP/n.sock"
notify_check "castore daemon" \
        "'$CASTORE' --store grpc+unix://$T_TMP/d.sock ls >/dev/null" \
        daemon --listen "grpc+unix://$T_TMP/d.sock"

# --- mount.castore, castore mount -o ------------------------------------------
if [ ! -c /dev/fuse ] || [ "$(id -u)" != 0 ]; then
        skip "mount.castore" "needs root and /dev/fuse"
else
        M=$T_TMP/mnt
        mkdir -p "$M"
        mounted() { grep -q " $M fuse.castore " /proc/mounts; }
        # the argv mount(8) gives a helper: SOURCE TARGET [-sfnv] [-o OPTIONS] [-t TYPE]
        if "$BIN/mount.castore" "$STORE" "$M" -o rw,nosuid,nodev,noatime,list_root,threads=2,x-systemd.automount \
                -t castore && mounted; then ok "mount.castore STORE DIR -o ...: mounted on return"
        else notok "mount.castore STORE DIR -o ...: mounted on return"; fi
        expect_eq "mount.castore: list_root lists the root" "$(ls "$M" | grep -c '^tree$')" 1
        check "mount.castore: content" cmp "$M/tree/big" "$SRC/tree/big"
        umount "$M"
        wait_until 20 bash -c "! grep -q ' $M fuse' /proc/mounts"
        out=$("$BIN/mount.castore" "$STORE" "$M" -o list_root,frobnicate 2>&1); rc=$?
        if [ $rc -ne 0 ] && ! mounted && grep -q frobnicate <<<"$out"; then ok "mount.castore refuses an unknown option"
        else notok "mount.castore refuses an unknown option (exit $rc)"; fi
        check "mount.castore -f: no mount" bash -c "'$BIN/mount.castore' '$STORE' '$M' -f -o list_root && ! grep -q ' $M fuse' /proc/mounts"
        if "$BIN/mount.castore" "$STORE" "$M" -s -o frobnicate 2>/dev/null && mounted &&
                ! ls "$M" >/dev/null 2>&1 && [ -f "$M/tree/a.txt" ]; then
                ok "mount.castore -s: an unknown option ignored (no list_root: the root is not listable)"
        else notok "mount.castore -s: an unknown option ignored"; fi
        umount "$M"; wait_until 20 bash -c "! grep -q ' $M fuse' /proc/mounts"
        # a store that is a daemon's address
        DS=$T_TMP/daemon.sock
        "$CASTORE" --store "$STORE" daemon --listen "grpc+unix://$DS" >"$T_TMP/daemon.log" 2>&1 &
        DPID=$!
        at_exit "kill $DPID"
        wait_until 30 test -S "$DS"
        # (a daemon serves store paths; named roots are the local store's)
        SP=$(cs path-info --all 2>/dev/null | grep -o '/nix/store/[^ ]*-tree' | head -1)
        if "$BIN/mount.castore" "grpc+unix://$DS" "$M" -o list_root && [ -n "$SP" ] &&
                cmp -s "$M/${SP#/nix/store/}/big" "$SRC/tree/big"; then
                ok "mount.castore grpc+unix://SOCKET DIR"
        else notok "mount.castore grpc+unix://SOCKET DIR"; fi
        umount "$M"; wait_until 20 bash -c "! grep -q ' $M fuse' /proc/mounts"
        kill $DPID; wait $DPID 2>/dev/null
        # castore mount -o, in the foreground
        "$CASTORE" --store "$STORE" mount -o list_root,threads=3,passthrough=off,sandbox=auto "$M" &
        MPID=$!
        if wait_until 30 mounted && [ "$(ls "$M" | grep -c '^tree$')" = 1 ]; then ok "castore mount -o list_root,threads=3,..."
        else notok "castore mount -o list_root,threads=3,..."; fi
        kill $MPID; wait_until 30 pid_gone $MPID; wait_until 30 bash -c "! grep -q ' $M fuse' /proc/mounts"
        out=$(cs mount -o list_root,threads=0 "$M" 2>&1); rc=$?
        expect_eq "castore mount -o threads=0: a usage error" "$rc" 2

        # the real mount(8): it finds helpers in /sbin only, so a private
        # mount namespace overlays /sbin with one holding mount.castore
        if have unshare && have mount; then
                out=$(unshare -m --propagation private bash -c '
                        set -e
                        sbin=$(readlink -f /sbin)
                        mount -t overlay overlay -o "lowerdir='"$BIN"':$sbin" "$sbin" || exit 77
                        M='"$M"'
                        printf "%s %s castore list_root,nofail,x-test 0 0\n" '"$STORE"' "$M" >'"$T_TMP"'/fstab
                        mount -t castore -o list_root '"$STORE"' "$M"
                        ls "$M" | grep -qx tree && echo "ok - mount -t castore STORE DIR -o list_root"
                        umount "$M"
                        mount --fstab '"$T_TMP"'/fstab "$M"
                        cmp "$M/tree/big" '"$SRC"'/tree/big && echo "ok - mount DIR through an fstab line"
                        umount "$M"' 2>&1); rc=$?
                if [ $rc -eq 77 ]; then skip "mount -t castore through mount(8)" "cannot overlay /sbin here"
                else
                        for n in "mount -t castore STORE DIR -o list_root" "mount DIR through an fstab line"; do
                                if grep -qx "ok - $n" <<<"$out"; then ok "$n"; else printf '# %s\n' "$out"; notok "$n"; fi
                        done
                fi
        else
                skip "mount -t castore through mount(8)" "unshare or mount missing"
        fi

        # --- a detached daemon's log reaches syslog ---------------------------
        # No syslog daemon needs to run: $CASTORE_SYSLOG_SOCKET stands in for
        # /dev/log (the same datagrams, in syslog(3)'s format).
        LOGS=$T_TMP/syslog.sock
        dgram_listen "$LOGS" "$T_TMP/syslog.out"
        if CASTORE_SYSLOG_SOCKET=$LOGS cs mount --daemon "$M" 2>"$T_TMP/mount.err"; then
                hex=$(b3sum --no-names "$SRC/rot/victim" 2>/dev/null)
                blob=$STORE/blobs/${hex:0:2}/$hex
                if [ -n "$hex" ] && [ -f "$blob" ]; then
                        printf 'R' | dd of="$blob" bs=1 seek=0 conv=notrunc status=none
                        if cat "$M/rot/victim" >/dev/null 2>&1; then notok "a corrupt blob reads as EIO"
                        else ok "a corrupt blob reads as EIO"; fi
                        if wait_until 20 grep -q "^<28>.* castore\[[0-9]*\]: .*$hex\|^<28>.* castore\[[0-9]*\]: Blob" "$T_TMP/syslog.out"; then
                                ok "the detached daemon's warning reaches syslog (daemon.warning, castore[PID])"
                        else sed 's/^/# /' "$T_TMP/syslog.out" | tail -5; notok "the detached daemon's warning reaches syslog"; fi
                else
                        skip "a detached daemon's log reaches syslog" "b3sum missing: cannot find the blob"
                fi
                umount "$M"; wait_until 20 bash -c "! grep -q ' $M fuse' /proc/mounts"
        else
                notok "castore mount --daemon with a syslog socket"
        fi
fi

# --- the system store default; read-only use by another user ------------------
if [ "$(id -u)" = 0 ]; then
        if [ ! -e /var/lib/castore ]; then
                out=$(env -u CASTORE_STORE "$CASTORE" ls 2>&1)
                if grep -q /var/lib/castore <<<"$out" && [ ! -e /var/lib/castore ]; then ok "root's default store is /var/lib/castore"
                else printf '# %s\n' "$out"; notok "root's default store is /var/lib/castore"; fi
        else
                skip "root's default store is /var/lib/castore" "/var/lib/castore exists here (not touched)"
        fi
fi
RUNAS=""
if [ "$(id -u)" = 0 ] && have setpriv; then RUNAS="setpriv --reuid=65534 --regid=65534 --clear-groups"; fi
if [ -z "$RUNAS" ]; then
        skip "read-only use by another user" "needs root and setpriv"
else
        chmod 755 "$T_TMP"
        chmod -R a+rX "$STORE"
        NH=$T_TMP/nobody-home
        mkdir -p "$NH/out" && chown -R 65534:65534 "$NH"
        nob() { HOME=$NH $RUNAS env -u CASTORE_STORE "$CASTORE" "$@"; }
        out=$(nob ls 2>&1)
        if grep -q "$NH/.local/share/castore" <<<"$out"; then ok "a user's default store is ~/.local/share/castore"
        else printf '# %s\n' "$out"; notok "a user's default store is ~/.local/share/castore"; fi
        before=$(cd "$STORE" && find . -printf '%p %s %T@ %m\n' | sort)
        check "nobody: ls" bash -c "HOME=$NH $RUNAS '$CASTORE' --store '$STORE' ls tree | grep -qx sub/"
        expect_eq "nobody: cat" "$(nob --store "$STORE" cat tree/a.txt 2>&1)" "hello"
        check "nobody: export" bash -c "HOME=$NH $RUNAS '$CASTORE' --store '$STORE' export tree '$NH/out/tree' && diff -r '$NH/out/tree' '$SRC/tree'"
        if have strace; then
                strace -f -e trace=open,openat -o "$T_TMP/strace.out" $RUNAS "$CASTORE" --store "$STORE" cat tree/big >/dev/null 2>&1
                opened=$(grep -F "$STORE" "$T_TMP/strace.out" | grep -v ' = -1 ')
                if grep -q 'data.mdb.*O_RDONLY' <<<"$opened" && ! grep -q 'O_RDWR\|O_WRONLY\|O_CREAT' <<<"$opened"; then
                        ok "nobody: LMDB opened read-only, nothing in the store opened for writing"
                else printf '# %s\n' "$opened" | tail; notok "nobody: LMDB opened read-only, nothing opened for writing"; fi
        else
                skip "nobody: LMDB opened read-only" "strace is not installed"
        fi
        if [ -c /dev/fuse ] && have fusermount3 && [ -u "$(command -v fusermount3)" ] && $RUNAS test -w /dev/fuse; then
                NM=$NH/mnt
                mkdir -p "$NM" && chown 65534:65534 "$NM"
                if HOME=$NH $RUNAS "$CASTORE" --store "$STORE" mount --daemon "$NM" 2>"$T_TMP/nobody-mount.err" &&
                        cmp -s "$NM/tree/big" "$SRC/tree/big"; then ok "nobody: mount (fusermount3) reads the store"
                else sed 's/^/# /' "$T_TMP/nobody-mount.err"; notok "nobody: mount (fusermount3) reads the store"; fi
                HOME=$NH $RUNAS "$CASTORE" umount "$NM" >/dev/null 2>&1 || umount -l "$NM" 2>/dev/null
        else
                skip "nobody: mount" "no /dev/fuse that nobody may open, or no setuid fusermount3"
        fi
        after=$(cd "$STORE" && find . -printf '%p %s %T@ %m\n' | sort)
        expect_eq "nobody: the store is unchanged (no lock file, nothing written)" "$after" "$before"
        # docs/SYSTEM.md's read-only group: lock.mdb writable by the group,
        # so readers take LMDB's reader slots
        if have strace; then
                chgrp -R 65534 "$STORE" && chmod g+rw "$STORE/meta/lock.mdb"
                strace -f -e trace=open,openat -o "$T_TMP/strace2.out" $RUNAS "$CASTORE" --store "$STORE" cat tree/a.txt >/dev/null 2>&1
                if grep -q 'lock.mdb", O_RDWR.* = [0-9]' "$T_TMP/strace2.out"; then
                        ok "a group given lock.mdb reads with LMDB's lock"
                else notok "a group given lock.mdb reads with LMDB's lock"; fi
                chgrp -R 0 "$STORE"
        else
                skip "a group given lock.mdb reads with LMDB's lock" "strace is not installed"
        fi
fi

# --- meson install -------------------------------------------------------------
D=$T_TMP/dest
if meson install -C "$BUILD_DIR" --destdir "$D" --no-rebuild >"$T_TMP/install.log" 2>&1; then
        missing=""
        for f in bin/castore sbin/mount.castore libexec/castore-virtiofs share/man/man1/castore.1 \
                share/man/man8/mount.castore.8 share/bash-completion/completions/castore \
                share/qemu/vhost-user/50-castore-virtiofs.json share/doc/castore/examples/nix-store.mount.example \
                systemd/system/castore-daemon.service systemd/system/castore-virtiofs@.service; do
                found=$(cd "$D" && find . -path "*/$f" | head -1)
                [ -n "$found" ] || missing="$missing $f"
        done
        expect_eq "meson install: binary, helper, back-end, man pages, completion, units, JSON" "$missing" ""
        m=$(cd "$D" && find . -name mount.castore | head -1)
        check "meson install: mount.castore runs castore" test "$(readlink "$D/$m")" = \
                "$(grep -o '"binary": "[^"]*"' "$(find "$D" -name 50-castore-virtiofs.json)" | cut -d'"' -f4 | sed 's|libexec/castore-virtiofs|bin/castore|')"
else
        sed 's/^/# /' "$T_TMP/install.log" | tail
        notok "meson install --destdir"
fi
