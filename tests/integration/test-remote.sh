#!/bin/bash
# castore's client against castore's daemon, over a unix socket and TCP:
#  1. the daemon: socket modes, a second daemon on the same socket or TCP
#     port refused while the first serves on;
#  2. a real tree imported remotely: the same store path and NAR hash as a
#     local import;
#  3. a remote mount with an empty --cache compared with its source, the
#     cache then holding what was read;
#  4. the daemon stopped: that mount's cache still serves what was read,
#     what was never read fails with EIO in bounded time;
#  5. the daemon restarted under mounts without a cache: they reconnect;
#  6. 16 concurrent clients;
#  7. bad addresses and a socket where nothing listens: clear and quick
#     errors;
#  8. the daemon's store verifies clean afterwards.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
have b3sum || { skip "remote" "b3sum is not installed"; exit 77; }

DSTORE=$T_TMP/dstore  # the daemon's store
LSTORE=$T_TMP/lstore  # a local import of the same tree, for comparison
SOCK=$T_TMP/d.sock
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
UNIX=grpc+unix://$SOCK
TCP=grpc+http://127.0.0.1:$PORT
fuse_check

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
sock_open() { "$PY" -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# start_daemon LOG [ARGS...]: the daemon on $SOCK and $PORT, $DPID set once
# both answer
DPID=
start_daemon() {
        local log=$1
        shift
        "$CASTORE" --store "$DSTORE" daemon --listen "$UNIX" --listen "$TCP" "$@" 2>"$T_TMP/$log" &
        DPID=$!
        at_exit "kill $DPID"
        up() { pid_gone "$DPID" || { sock_open "$SOCK" && port_open "$PORT"; }; }
        wait_until 30 up && ! pid_gone "$DPID" && return 0
        sed 's/^/# /' "$T_TMP/$log" | tail -5
        return 1
}
# stop_daemon WHAT: SIGTERM, then a check that it exited 0 within 20 s
stop_daemon() {
        local rc=0
        kill -TERM "$DPID"
        if wait_until 20 pid_gone "$DPID"; then wait "$DPID" || rc=$?; else kill -KILL "$DPID"; rc="still running"; fi
        expect_eq "$1: daemon exits 0 on SIGTERM" "$rc" 0
}

# --- the source tree -----------------------------------------------------------
SRC=$T_TMP/src
mkdir -p "$SRC/doc" "$SRC/bin"
ls /usr/share/doc | head -60 | while read -r d; do cp -a "/usr/share/doc/$d" "$SRC/doc/"; done
head -c $((5 << 20)) /dev/urandom >"$SRC/random5m"
# over 1 MiB, so never prefetched with its closure; excluded from the reads of part 3
head -c $(((2 << 20) + 1)) /dev/urandom >"$SRC/never-read.bin"
: >"$SRC/empty"
printf '#!/bin/sh\necho hi from a remote castore\n' >"$SRC/bin/hello.sh"
chmod 755 "$SRC/bin/hello.sh"
ln -s bin/hello.sh "$SRC/link"
printf 'a name with a space\n' >"$SRC/with space.txt"
echo "# source tree: $(find "$SRC" -type f | wc -l) files, $(du -sh "$SRC" | cut -f1)"
hex() { b3sum --no-names "$1"; }
in_cache() { [ -e "$1/blobs/${2:0:2}/$2" ]; }

# --- 1. the daemon ---------------------------------------------------------------
if ! start_daemon daemon.err; then
        notok "castore daemon serves a unix socket and a TCP port"
        exit 1
fi
ok "castore daemon serves a unix socket and a TCP port"
expect_eq "socket mode 0600 by default" "$(stat -c %a "$SOCK")" 600

# a daemon of another store with --socket-mode 0660
"$CASTORE" --store "$T_TMP/store660" daemon --listen "grpc+unix://$T_TMP/s660.sock" --socket-mode 0660 \
        2>"$T_TMP/d660.err" &
pid660=$!
at_exit "kill $pid660"
if wait_until 30 sh -c "[ -S '$T_TMP/s660.sock' ] || [ ! -e /proc/$pid660 ]" && ! pid_gone "$pid660"; then
        expect_eq "--socket-mode 0660" "$(stat -c %a "$T_TMP/s660.sock")" 660
        kill -TERM "$pid660"
        wait_until 20 pid_gone "$pid660"
        wait "$pid660"
        expect_eq "--socket-mode 0660: daemon exits 0 on SIGTERM" "$?" 0
        check "the socket is removed at exit" test ! -e "$T_TMP/s660.sock"
else
        sed 's/^/# /' "$T_TMP/d660.err" | tail -5
        notok "daemon with --socket-mode 0660 starts"
fi

# second_daemon NAME ADDR: another daemon (of another store) on ADDR is
# refused with an error, and the first serves on
second_daemon() {
        local name=$1 addr=$2 rc=0 start
        start=$(date +%s%N)
        timeout 30 "$CASTORE" --store "$T_TMP/store2" daemon --listen "$addr" >/dev/null 2>"$T_TMP/second.err" || rc=$?
        if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then
                ok "$name: a second daemon is refused (exit $rc, $(ms_since "$start") ms: $(grep -m1 '^castore:' "$T_TMP/second.err"))"
        else
                sed 's/^/# /' "$T_TMP/second.err" | tail -5
                notok "$name: a second daemon is refused (exit $rc)"
        fi
        check "$name: the first daemon still runs" kill -0 "$DPID"
}
second_daemon "unix socket" "$UNIX"
check "unix socket: still there, mode 0600" test "$(stat -c %a "$SOCK" 2>&1)" = 600

# --- 2. import -------------------------------------------------------------------
out_local=$("$CASTORE" --store "$LSTORE" import "$SRC" --name tree 2>"$T_TMP/err") ||
        { sed 's/^/# /' "$T_TMP/err"; notok "local import"; exit 1; }
echo "# local import: $out_local"
for via in unix tcp; do
        [ $via = unix ] && A=$UNIX || A=$TCP
        out=$("$CASTORE" --store "$A" import "$SRC" --name tree 2>"$T_TMP/err") || sed 's/^/# /' "$T_TMP/err"
        expect_eq "$via: remote import prints what a local import prints" "$out" "$out_local"
done
BASE=$(echo "$out_local" | awk '{print $3}')
BASE=${BASE#/nix/store/}
want_nar=$("$CASTORE" --store "$LSTORE" nar hash "/nix/store/$BASE")
for via in unix tcp; do
        [ $via = unix ] && A=$UNIX || A=$TCP
        expect_eq "$via: nar hash remote = local" "$("$CASTORE" --store "$A" nar hash "/nix/store/$BASE" 2>&1)" "$want_nar"
done
if have nix-hash; then
        expect_eq "nar hash = nix-hash of the source" "$want_nar" "sha256:$(nix-hash --type sha256 --base32 "$SRC")"
fi

# second daemon on the TCP port, after the imports (a daemon that shared the
# port would get half the connections)
second_daemon "TCP port" "$TCP"
expect_eq "TCP: the first daemon serves after the second was refused" \
        "$("$CASTORE" --store "$TCP" cat "$BASE/with space.txt" 2>&1)" "a name with a space"

# --- 6. 16 concurrent clients --------------------------------------------------------
mapfile -t FILES < <(cd "$SRC" && find . -type f -size +0 ! -name never-read.bin -printf '%P\n' | sort | head -15)
FILES+=(random5m)
for via in unix tcp; do
        [ $via = unix ] && A=$UNIX || A=$TCP
        mkdir -p "$T_TMP/par-$via"
        pids=()
        for i in "${!FILES[@]}"; do
                "$CASTORE" --store "$A" cat "$BASE/${FILES[$i]}" >"$T_TMP/par-$via/$i" 2>"$T_TMP/par-$via/$i.err" &
                pids+=($!)
        done
        bad=0
        for i in "${!pids[@]}"; do
                if ! wait "${pids[$i]}" || ! cmp -s "$T_TMP/par-$via/$i" "$SRC/${FILES[$i]}"; then
                        bad=$((bad + 1))
                        echo "# ${FILES[$i]}: $(head -1 "$T_TMP/par-$via/$i.err")"
                fi
        done
        expect_eq "$via: 16 concurrent cat of different files, all correct" "$bad failed" "0 failed"
done

# --- 7. errors --------------------------------------------------------------------------
# quick_error NAME WANT_RE CMD...: fails with exit 1 or 2 within 10 s, its
# error matching WANT_RE
quick_error() {
        local name=$1 re=$2 rc=0 start
        shift 2
        start=$(date +%s%N)
        timeout 60 "$@" >/dev/null 2>"$T_TMP/qe.err" || rc=$?
        local ms
        ms=$(ms_since "$start")
        if { [ $rc -eq 1 ] || [ $rc -eq 2 ]; } && [ "$ms" -lt 10000 ] && grep -Eq "$re" "$T_TMP/qe.err"; then
                ok "$name (exit $rc in $ms ms: $(head -1 "$T_TMP/qe.err"))"
        else
                sed 's/^/# /' "$T_TMP/qe.err" | tail -5
                notok "$name (exit $rc in $ms ms)"
        fi
}
quick_error "grpc+unix:// with a host: clear error" 'grpc\+unix://host/x' \
        "$CASTORE" --store grpc+unix://host/x cat "$BASE/empty"
quick_error "grpc+http:// without a port: clear error" 'nohostport' \
        "$CASTORE" --store grpc+http://nohostport cat "$BASE/empty"
# the error names the address and the connection, not a missing path
quick_error "cat against a socket where nothing listens" "$T_TMP/nothing.sock.*(onnect|efused)" \
        "$CASTORE" --store "grpc+unix://$T_TMP/nothing.sock" cat "$BASE/empty"
"$PY" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T_TMP/stale.sock"
quick_error "cat against a stale socket file" "$T_TMP/stale.sock.*(onnect|efused)" \
        "$CASTORE" --store "grpc+unix://$T_TMP/stale.sock" cat "$BASE/empty"
FREE=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
quick_error "cat against a TCP port where nothing listens" "127.0.0.1:$FREE.*(onnect|efused)" \
        "$CASTORE" --store "grpc+http://127.0.0.1:$FREE" cat "$BASE/empty"

# --- mounts --------------------------------------------------------------------------
if [ $FUSE = 0 ]; then
        for t in "3. mount with an empty cache" "4. mount from the cache, daemon stopped" "5. daemon restart under a mount"; do
                skip "$t" "$WHY_NO_FUSE"
        done
        stop_daemon "end"
else
        mounted() { grep -q " $1 fuse.castore " /proc/mounts; }
        mpid() { pgrep -f -- "mount $1 --daemon" | head -1; }
        gone() { ! mounted "$1" && [ -z "$(mpid "$1")" ]; }
        # rmount DIR ADDR [ARGS...]: a remote mount as a daemon
        rmount() {
                local dir=$1 addr=$2
                shift 2
                mkdir -p "$dir"
                "$CASTORE" --store "$addr" "$@" mount "$dir" --daemon 2>"$T_TMP/mount.err" && return 0
                sed 's/^/# /' "$T_TMP/mount.err" | tail -5
                return 1
        }
        unmount() { "$CASTORE" umount "$1" && wait_until 10 gone "$1"; }
        # read_errno PATH: OK, an errno name, or TIMEOUT (60 s), and the time taken
        read_errno() {
                local start r
                start=$(date +%s%N)
                r=$(timeout 60 "$PY" -c '
import errno, sys
try:
    open(sys.argv[1], "rb").read()
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$1") || r=${r:-TIMEOUT}
                echo "$r $(ms_since "$start")"
        }

        # --- 3. an empty cache, filled by the reads ---
        CACHE=$T_TMP/cache
        M=$T_TMP/m-cache
        if rmount "$M" "$UNIX" --cache "$CACHE"; then
                ok "3. mount with an empty cache"
                check "3. diff -r against the source (all but never-read.bin)" \
                        diff -r --no-dereference -x never-read.bin "$SRC" "$M/$BASE"
                expect_eq "3. the executable runs" "$("$M/$BASE/link" 2>&1)" "hi from a remote castore"
                expect_eq "3. stat of the never read file (metadata only)" "$(stat -c '%s %a' "$M/$BASE/never-read.bin")" "2097153 444"
                missing=0
                while IFS= read -r -d '' f; do
                        in_cache "$CACHE" "$(hex "$f")" || { missing=$((missing + 1)); echo "# not in the cache: $f"; }
                done < <(find "$SRC" -type f -size +0 ! -name never-read.bin -print0)
                expect_eq "3. the cache holds every blob read" "$missing missing" "0 missing"
                check "3. the cache lacks the blob never read" sh -c "! [ -e '$CACHE/blobs/$(hex "$SRC/never-read.bin" | cut -c1-2)/$(hex "$SRC/never-read.bin")' ]"
                check "3. umount" unmount "$M"
        else
                notok "3. mount with an empty cache"
        fi

        # --- 4. the daemon stopped: the cache serves what it holds ---
        stop_daemon "4."
        check "4. the daemon removed its socket" test ! -e "$SOCK"
        M=$T_TMP/m-offline
        if rmount "$M" "$UNIX" --cache "$CACHE"; then
                ok "4. mount from the filled cache, daemon stopped"
                check "4. the 5 MB file reads from the cache" cmp "$SRC/random5m" "$M/$BASE/random5m"
                check "4. a file with a space reads from the cache" cmp "$SRC/with space.txt" "$M/$BASE/with space.txt"
                check "4. diff -r of the doc tree from the cache" diff -r --no-dereference "$SRC/doc" "$M/$BASE/doc"
                read -r e ms < <(read_errno "$M/$BASE/never-read.bin")
                expect_eq "4. a file never read: EIO ($ms ms)" "$e" EIO
                check "4. a file never read: fails within 20 s" test "$ms" -lt 20000
                read -r e ms < <(read_errno "$M/$BASE/never-read.bin")
                expect_eq "4. a file never read, again: EIO ($ms ms)" "$e" EIO
                check "4. the mount still serves" cmp "$SRC/random5m" "$M/$BASE/random5m"
                check "4. umount" unmount "$M"
        else
                notok "4. mount from the filled cache, daemon stopped"
        fi

        # --- 5. a restart under mounts without a cache, over unix and TCP ---
        if start_daemon daemon2.err; then
                ok "5. the daemon starts again on the same socket and port"
                MU=$T_TMP/m-unix MT=$T_TMP/m-tcp
                rmount "$MU" "$UNIX" || notok "5. unix: mount without a cache"
                rmount "$MT" "$TCP" || notok "5. tcp: mount without a cache"
                for m in "$MU" "$MT"; do
                        check "5. ${m##*-}: read before the restart" cmp "$SRC/random5m" "$m/$BASE/random5m"
                done
                stop_daemon "5. restart"
                if start_daemon daemon3.err; then
                        for m in "$MU" "$MT"; do
                                start=$(date +%s%N)
                                check "5. ${m##*-}: a file never read before, after the restart" \
                                        cmp "$SRC/never-read.bin" "$m/$BASE/never-read.bin"
                                echo "# read in $(ms_since "$start") ms"
                                check "5. ${m##*-}: diff -r after the restart" diff -r --no-dereference "$SRC" "$m/$BASE"
                        done
                else
                        notok "5. the daemon starts a third time"
                fi
                check "5. unix: umount" unmount "$MU"
                check "5. tcp: umount" unmount "$MT"
        else
                notok "5. the daemon starts again on the same socket and port"
        fi
fi

# --- 8. the daemon's store afterwards --------------------------------------------------
pid_gone "$DPID" || stop_daemon "8."
out=$("$CASTORE" --store "$DSTORE" verify 2>&1)
rc=$?
printf '%s\n' "$out" | tail -3 | sed 's/^/# /'
expect_eq "8. verify of the daemon's store: exit 0" "$rc" 0
check "8. verify of the daemon's store: no problem" grep -q ' 0 problems' <<<"$out"
expect_eq "8. the daemon's store holds the path" "$("$CASTORE" --store "$DSTORE" nar hash "/nix/store/$BASE" 2>&1)" "$want_nar"
exit 0
