# Shared helpers for integration tests (sourced by tests/integration/test-*.sh).
# Each check prints one TAP-like line:
#   ok - NAME            passed
#   not ok - NAME        failed (details on the lines before it)
#   skip - NAME: REASON  could not run here, and why
# The script's exit status follows meson's convention (tests/integration/
# meson.build runs each script as one test): 1 if a check failed or the
# script stopped early with an error, 77 (skip) if every check was skipped,
# 0 otherwise.  A script that reports nothing at all fails: a test must
# never pass without having checked anything.
set -u

: "${CASTORE:?CASTORE must point at the castore binary}"
: "${BUILD_DIR:?BUILD_DIR must point at the build directory}"
SRC_DIR=${SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# A scratch directory removed at exit (mounts under it are unmounted first).
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/castore-test.XXXXXX")
# Results are counted in a file, so that checks run in a subshell count too.
T_RESULTS=$T_TMP/.results
: >"$T_RESULTS"
T_FAILED=0 # failures counted in this shell (the file has all of them)

ok()    { echo "ok - $*"; echo ok >>"$T_RESULTS"; }
notok() { echo "not ok - $*"; echo notok >>"$T_RESULTS"; T_FAILED=$((T_FAILED + 1)); }
skip()  { echo "skip - $1: $2"; echo skip >>"$T_RESULTS"; }
# t_count KIND N: counts N results reported by someone else (a guest)
t_count() { local i; for ((i = 0; i < $2; i++)); do echo "$1" >>"$T_RESULTS"; done; }

# check NAME CMD...: runs CMD, ok if it exits 0.
check() {
        local name=$1; shift
        local out rc=0
        out=$("$@" 2>&1) || rc=$?
        if [ $rc -eq 0 ]; then ok "$name"; else
                printf '%s\n' "$out" | tail -20 | sed 's/^/# /'
                notok "$name (exit $rc)"
        fi
}

# expect_eq NAME GOT WANT
expect_eq() {
        if [ "$2" = "$3" ]; then ok "$1"; else
                printf '# got:  %s\n# want: %s\n' "$2" "$3" | head -40
                notok "$1"
        fi
}

# wait_until SECONDS CMD...: runs CMD every 20 ms until it succeeds (0) or
# SECONDS have passed (1).  For waiting on a condition; never a fixed sleep.
wait_until() {
        local secs=$1 deadline
        shift
        deadline=$(($(date +%s%N) + secs * 1000000000))
        until "$@"; do
                [ "$(date +%s%N)" -lt "$deadline" ] || return 1
                sleep 0.02
        done
}

# pid_gone PID: the process has exited (gone, or a zombie not yet reaped)
pid_gone() {
        [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

T_CLEANUP=()
t_cleanup() {
        local i
        # last registered first: a server stops before its directory goes
        for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUP[i]}" >/dev/null 2>&1 || true; done
        grep -o " $T_TMP[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do
                umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
        done
        rm -rf "$T_TMP"
}
t_exit() {
        local rc=$? failed passed skipped
        failed=$(grep -c '^notok$' "$T_RESULTS" 2>/dev/null)
        passed=$(grep -c '^ok$' "$T_RESULTS" 2>/dev/null)
        skipped=$(grep -c '^skip$' "$T_RESULTS" 2>/dev/null)
        [ "$failed" -ge "$T_FAILED" ] 2>/dev/null || failed=$T_FAILED
        t_cleanup
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
                echo "# $(basename "$0") stopped with status $rc"
                exit "$rc"
        fi
        [ "${failed:-0}" -gt 0 ] && exit 1
        [ "${passed:-0}" -gt 0 ] && exit 0
        [ "${skipped:-0}" -gt 0 ] && exit 77
        echo "# $(basename "$0") reported no result"
        exit 1
}
trap t_exit EXIT
at_exit() { T_CLEANUP+=("$1"); }

have() { command -v "$1" >/dev/null 2>&1; }

# fuse_check: FUSE=1 if this test can mount, else FUSE=0 and WHY_NO_FUSE
fuse_check() {
        FUSE=1 WHY_NO_FUSE=
        if [ ! -c /dev/fuse ]; then FUSE=0 WHY_NO_FUSE="/dev/fuse is missing"
        elif [ "$(id -u)" != 0 ] && ! have fusermount3; then FUSE=0 WHY_NO_FUSE="not root and no fusermount3"; fi
}

# unmount MNT: castore umount, then wait until MNT has left /proc/mounts
unmount() { "$CASTORE" umount "$1" && wait_until 10 sh -c "! grep -q ' $1 fuse.castore ' /proc/mounts"; }
# check_mount_tree NAME TREE MNT SUB CMD...: "CMD mount MNT --daemon" works
# (the check NAME, its errors in MNT.err), MNT/SUB equals TREE (diff -r) and
# MNT unmounts; the last two checks take NAME's number ("8. ...").
check_mount_tree() {
        local name=$1 tree=$2 mnt=$3 sub=$4 n=${1%% *}
        shift 4
        mkdir -p "$mnt"
        if "$@" mount "$mnt" --daemon 2>"$mnt.err"; then
                ok "$name"
                check "$n diff -r of the mount against the tree" diff -r --no-dereference "$tree" "$mnt/$sub"
                check "$n umount" unmount "$mnt"
        else
                sed 's/^/# /' "$mnt.err" | tail -5
                notok "$name"
        fi
}

# nix_offline: real Nix (Debian's nix-bin) on a scratch chroot store
# $NIXROOT (paths still print as /nix/store/...): no daemon, no build users,
# no substituters, its caches and config under T_TMP.  nixs runs nix-store
# on that store.
nix_offline() {
        NIXROOT=$T_TMP/nixroot
        export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config XDG_DATA_HOME=$T_TMP/data
        export NIX_CONFIG='build-users-group =
sandbox = false
substituters =
experimental-features = nix-command'
        export NIX_REMOTE=
        mkdir -p "$HOME"
}
nixs() { nix-store --store "$NIXROOT" "$@"; }

# nix_tree DIR: the tree the Nix tests store: a file, an executable, a
# 3 MB random file, nested and empty directories, a symlink; directories
# 0755 (the modes nix-store --add keeps)
nix_tree() {
        mkdir -p "$1/sub/deeper" "$1/empty"
        printf 'Hello World!' >"$1/hello"
        printf '#!/bin/sh\necho hi\n' >"$1/script"; chmod 0755 "$1/script"
        head -c 3000000 /dev/urandom >"$1/sub/large"
        printf 'x' >"$1/sub/deeper/leaf"
        ln -s hello "$1/link"
        find "$1" -type d -exec chmod 0755 {} +
}

# nix_build_withref: builds, in $NIXROOT with a static busybox as builder,
# a path "withref" whose output names a text path "dep" (so it has
# References and a Deriver).  Sets built and dep to their store paths and
# returns 0; without a static busybox, or if nix-build fails, reports the
# skip, sets both to "" and returns 1.
nix_build_withref() {
        local bb=$T_TMP/bb busybox bbp
        built="" dep=""
        busybox=$(command -v busybox || true)
        if [ -n "$busybox" ] && file -L "$busybox" | grep -q 'statically linked'; then
                mkdir -p "$bb/bin"; cp "$busybox" "$bb/bin/busybox"; ln -s busybox "$bb/bin/sh"
                bbp=$(nixs --add "$bb")
                cat >"$T_TMP/d.nix" <<NIX
let bb = builtins.storePath $bbp; dep = builtins.toFile "dep" "a text path"; in
derivation { name = "withref"; system = builtins.currentSystem; builder = "\${bb}/bin/sh";
  args = ["-c" "echo \${dep} > \$out"]; }
NIX
                built=$(nix-build --store "$NIXROOT" --no-out-link "$T_TMP/d.nix" 2>"$T_TMP/err" | tail -1) ||
                        { sed 's/^/# /' "$T_TMP/err" | tail -5; built=""; }
        fi
        if [ -z "$built" ]; then
                skip "a path with references" "no static busybox or nix-build failed: only reference-free paths"
                return 1
        fi
        dep=$(nixs -q --references "$built")
}
