# Shared helpers for integration tests (sourced by tests/integration/test-*.sh).
# Each check prints one TAP-like line that tests/run.sh counts:
#   ok - NAME            passed
#   not ok - NAME        failed (details on the lines before it)
#   skip - NAME: REASON  could not run here, and why
# A test script exits 0 unless it could not run at all.
set -u

: "${CASTORE:?CASTORE must point at the castore binary}"
: "${BUILD_DIR:?BUILD_DIR must point at the build directory}"
SRC_DIR=${SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}

T_FAILED=0
ok()   { echo "ok - $*"; }
notok() { echo "not ok - $*"; T_FAILED=$((T_FAILED + 1)); }
skip() { echo "skip - $1: $2"; }

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

# A scratch directory removed at exit (mounts under it are unmounted first).
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/castore-test.XXXXXX")
T_CLEANUP=()
t_cleanup() {
        local c
        for c in ${T_CLEANUP[@]+"${T_CLEANUP[@]}"}; do eval "$c" >/dev/null 2>&1 || true; done
        grep -o " $T_TMP[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do
                umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
        done
        rm -rf "$T_TMP"
}
trap t_cleanup EXIT
at_exit() { T_CLEANUP+=("$1"); }

have() { command -v "$1" >/dev/null 2>&1; }
