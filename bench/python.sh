#!/bin/bash
# A Python and compiler workload on castore mount, natively and on erofs.
# The tree looks like a Nix store path of Python: bin/python3.11,
# lib/python3.11 (the stdlib, every .py compiled to a timestamp .pyc),
# include (a copy of /usr/include), pp/p0..p9 (ten sparse directories for
# PYTHONPATH), every file's and directory's mtime 1 as in a Nix store (and
# as castore shows every file), so the .pyc headers match the sources on
# all three targets.  Measures, cold (after drop_caches: one run) and warm
# (the mean of N runs after it):
#   startup   bin/python3.11 -c pass (warm: 50 runs)
#   imports   one interpreter importing ~200 stdlib modules (warm: 10)
#   search    the same with ten directories of the mount in front of the
#             stdlib on sys.path (PYTHONPATH), so most lookups miss (10)
#   compile   gcc -fsyntax-only of a C file including 49 libc/POSIX
#             headers from the tree's include (warm: 30)
# on the native tree, castore mount (default options) and erofs (an
# uncompressed image on a loop device), ROUNDS rounds (default 5) with
# the targets' order rotated each round; prints every round and a
# Markdown table of medians with the ratios to native.
#
# Usage (root): bench/python.sh [WORKDIR] [ROUNDS]  (default /var/tmp/castore-python, 5)
# Needs: castore built (CASTORE, default ./build/src/cli/castore),
# python3.11 in /usr/bin, gcc, erofs-utils, strace.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
W=${1:-/var/tmp/castore-python}
ROUNDS=${2:-5}
N_STARTUP=50 N_IMPORTS=10 N_CC=30
[ "$(id -u)" = 0 ] || { echo "bench/python.sh: needs root (drop_caches, mount)" >&2; exit 1; }
for t in /usr/bin/python3.11 gcc mkfs.erofs strace; do
        command -v $t >/dev/null || { echo "bench/python.sh: $t missing" >&2; exit 1; }
done
[ -x "$CASTORE" ] || { echo "bench/python.sh: no castore binary at $CASTORE" >&2; exit 1; }

mkdir -p "$W"
W=$(cd "$W" && pwd)
echo "load average at the start: $(cut -d" " -f1-3 /proc/loadavg)"
TREE=$W/tree STORE=$W/store MC=$W/mnt-castore ME=$W/mnt-erofs
cleanup() {
        local m
        for m in "$MC" "$ME"; do
                if grep -q " $m " /proc/mounts; then umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; fi
        done
}
trap cleanup EXIT

# --- the tree and its image (built once) -------------------------
if [ ! -f "$W/tree.done" ]; then
        rm -rf "$TREE" "$STORE" "$W/tree.erofs"
        mkdir -p "$TREE/bin" "$TREE/lib"
        cp -a /usr/bin/python3.11 "$TREE/bin/python3.11"
        cp -a /usr/lib/python3.11 "$TREE/lib/python3.11"
        cp -a /usr/include "$TREE/include"
        # Debian's byte-code caches record the package's mtimes: start afresh
        find "$TREE/lib" -name __pycache__ -type d -prune -exec rm -rf {} +
        # sparse PYTHONPATH entries, like a Nix PYTHONPATH of small packages:
        # one package and one module each, none of them named like the stdlib
        for i in 0 1 2 3 4 5 6 7 8 9; do
                mkdir -p "$TREE/pp/p$i/extpkg$i"
                echo "VALUE = $i" >"$TREE/pp/p$i/extpkg$i/__init__.py"
                echo "def f(): return $i" >"$TREE/pp/p$i/extmod$i.py"
        done
        find "$TREE" -exec touch -h -d @1 {} +
        # default (timestamp) invalidation: each .pyc records mtime 1 and the size
        env -i PATH=/usr/bin:/bin "$TREE/bin/python3.11" -m compileall -q -j 0 \
                "$TREE/lib/python3.11" "$TREE/pp" >/dev/null || true
        find "$TREE" -exec touch -h -d @1 {} +
        # -T1: every inode's mtime 1, as in the tree
        mkfs.erofs --quiet -T1 "$W/tree.erofs" "$TREE" >/dev/null
        touch "$W/tree.done"
fi
# the store (remove it to measure an import by another binary)
if [ ! -d "$STORE" ]; then
        "$CASTORE" --store "$STORE" import "$TREE" --name tree --skip-special >/dev/null
fi
echo "tree: $(find "$TREE" -type f | wc -l) files, $(find "$TREE" | wc -l) entries, $(( $(du -sb "$TREE" | cut -f1) >> 20 )) MiB"

# --- the workloads -------------------------------------------------------------
GCCINC=$(gcc -print-file-name=include)
cat >"$W/headers.c" <<'EOF'
#define _GNU_SOURCE
#include <assert.h>
#include <complex.h>
#include <ctype.h>
#include <errno.h>
#include <fenv.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uchar.h>
#include <wchar.h>
#include <wctype.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <regex.h>
#include <sched.h>
#include <semaphore.h>
#include <spawn.h>
#include <termios.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
int main(void) { return 0; }
EOF
# Stdlib modules of 3.11; those the tree's interpreter cannot import
# natively (missing optional extensions) are left out, for every target.
MODULES="abc argparse array ast asyncio asyncio.base_events asyncio.streams
asyncio.subprocess base64 bdb binascii bisect bz2 calendar cmath cmd code
codecs codeop collections collections.abc colorsys compileall concurrent.futures
configparser contextlib contextvars copy copyreg cProfile csv ctypes ctypes.util
dataclasses datetime decimal difflib dis doctest email email.charset
email.encoders email.feedparser email.generator email.header email.headerregistry
email.iterators email.message email.mime.application email.mime.audio
email.mime.base email.mime.image email.mime.multipart email.mime.nonmultipart
email.mime.text email.parser email.policy email.utils encodings.idna
encodings.utf_8 enum errno filecmp fileinput fnmatch fractions ftplib
functools gc getopt getpass gettext glob graphlib gzip hashlib heapq hmac
html html.entities html.parser http http.client http.cookiejar http.cookies
http.server imaplib importlib importlib.metadata importlib.resources inspect io
ipaddress itertools json json.decoder json.encoder keyword linecache locale
logging logging.config logging.handlers lzma mailbox math mimetypes
multiprocessing multiprocessing.pool netrc numbers operator optparse os
pathlib pdb pickle pickletools pkgutil platform plistlib poplib pprint
profile pstats pty py_compile pydoc queue quopri random re reprlib rlcompleter
runpy sched secrets selectors shelve shlex shutil signal site smtplib socket
socketserver sqlite3 ssl stat statistics string stringprep struct subprocess
symtable sysconfig tabnanny tarfile tempfile textwrap threading timeit token
tokenize tomllib trace traceback tracemalloc types typing unittest
unittest.mock urllib urllib.error urllib.parse urllib.request urllib.response
uuid warnings wave weakref webbrowser wsgiref.simple_server xml.dom.minidom
xml.dom.pulldom xml.etree.ElementTree xml.parsers.expat xml.sax
xml.sax.saxutils xmlrpc.client xmlrpc.server zipapp zipfile zipimport zlib
zoneinfo"
# pyenv ROOT: the environment of every Python run (identical for all targets)
pyenv() { env -i PATH=/usr/bin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1 "$@"; }
cat >"$W/imports.py" <<'EOF'
import importlib, sys, warnings
warnings.simplefilter("ignore")
bad = []
for m in open(sys.argv[1]).read().split():
    try:
        importlib.import_module(m)
    except Exception:
        bad.append(m)
if len(sys.argv) > 2:
    print(" ".join(bad))
elif bad:
    sys.exit("not importable: " + " ".join(bad))
EOF
printf '%s\n' $MODULES >"$W/modules.all"
bad=$(pyenv "$TREE/bin/python3.11" "$W/imports.py" "$W/modules.all" list)
printf '%s\n' $MODULES | grep -vxF -f <(printf '%s\n' $bad "") >"$W/modules" || true
echo "imports: $(wc -l <"$W/modules") modules${bad:+ (left out, not importable here: $bad)}"

startup() { pyenv "$1/bin/python3.11" -c pass; }
imports() { pyenv "$1/bin/python3.11" "$W/imports.py" "$W/modules"; }
search_path() { local i p=''; for i in 0 1 2 3 4 5 6 7 8 9; do p=$p${p:+:}$1/pp/p$i; done; echo "$p"; }
search() { pyenv PYTHONPATH="$(search_path "$1")" "$1/bin/python3.11" "$W/imports.py" "$W/modules"; }
compile() {
        gcc -fsyntax-only -nostdinc -isystem "$GCCINC" -isystem "$1/include/x86_64-linux-gnu" \
                -isystem "$1/include" "$W/headers.c"
}
# repeat N F ROOT: runs F ROOT N times
repeat() { local i; for ((i = 0; i < $1; i++)); do "$2" "$3"; done; }

# --- mounts and checks ----------------------------------------------------------
mkdir -p "$MC" "$ME"
"$CASTORE" --store "$STORE" mount "$MC" --daemon
mount -t erofs -o loop,ro "$W/tree.erofs" "$ME"
declare -A ROOT=([native]=$TREE [castore]=$MC/tree [erofs]=$ME)
TARGETS="native castore erofs"
DAEMON=$(fuse_daemon_pid "$MC") || { echo "bench/python.sh: no daemon serving $MC" >&2; exit 1; }

for t in $TARGETS; do
        d=${ROOT[$t]}
        # the interpreter's prefix and stdlib are in the tree it was started from
        pyenv "$d/bin/python3.11" -c '
import sys
root = sys.argv[1]
std = [p for p in sys.path if "python3" in p]
assert sys.prefix == root and std and all(p.startswith(root) for p in std), (sys.prefix, sys.path)' "$d"
        m=$(stat -c %Y "$d/lib/python3.11/json/decoder.py")
        [ "$m" = 1 ] || { echo "bench/python.sh: $t shows mtime $m, not 1" >&2; exit 1; }
        # the cached .pyc are used: python -v reports each module's code
        # object from its .pyc and no stale byte code; strace counts the opens
        v=$(pyenv "$d/bin/python3.11" -v "$W/imports.py" "$W/modules" 2>&1 >/dev/null)
        from_pyc=$(grep -c "^# code object from '$d/.*\.pyc'" <<<"$v" || true)
        stale=$(grep -c 'bytecode is stale\|bad magic' <<<"$v" || true)
        s=$(pyenv strace -f -e trace=openat -o /dev/stdout "$d/bin/python3.11" "$W/imports.py" "$W/modules" 2>/dev/null)
        pyc_opens=$(grep -c '\.pyc", O_RDONLY[^=]*= [0-9]' <<<"$s" || true)
        py_opens=$(grep -c '\.py", O_RDONLY[^=]*= [0-9]' <<<"$s" || true)
        echo "$t: sys.prefix $d; $from_pyc modules loaded from .pyc, $stale stale; openat: $pyc_opens .pyc, $py_opens .py"
        if [ "$stale" != 0 ] || [ "$from_pyc" -lt 100 ] || [ "$py_opens" -gt 5 ]; then
                echo "bench/python.sh: $t does not use the cached byte code" >&2; exit 1
        fi
        compile "$d" || { echo "bench/python.sh: the headers do not compile on $t" >&2; exit 1; }
done

# --- the rounds --------------------------------------------------------------------
MEASURES="startup imports search compile"
declare -A N=([startup]=$N_STARTUP [imports]=$N_IMPORTS [search]=$N_IMPORTS [compile]=$N_CC)
declare -A R=()  # R[target,measure_cold|warm] = the rounds' values (ms), space separated
set -- $TARGETS
order=("$@")
for ((r = 1; r <= ROUNDS; r++)); do
        echo "--- round $r"
        for ((k = 0; k < ${#order[@]}; k++)); do
                t=${order[(k + r - 1) % ${#order[@]}]}
                d=${ROOT[$t]}
                line="  $t:"
                for m in $MEASURES; do
                        drop_caches
                        cold=$(secs_of "$m" "$d")
                        warm=$(secs_of repeat "${N[$m]}" "$m" "$d")
                        cold=$(awk -v s="$cold" 'BEGIN { printf "%.1f", s * 1000 }')
                        warm=$(awk -v s="$warm" -v n="${N[$m]}" 'BEGIN { printf "%.1f", s * 1000 / n }')
                        R[$t,${m}_cold]+="$cold " R[$t,${m}_warm]+="$warm "
                        line+=" $m cold $cold ms, warm $warm ms;"
                done
                echo "$line"
        done
done
echo "load average after the rounds: $(cut -d" " -f1-3 /proc/loadavg)"
RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON/status")

# --- where castore's time goes: FUSE requests of one cold and one warm run --------
echo
echo "FUSE requests to castore (kernel tracepoints; time from send to reply):"
export -f pyenv search_path $MEASURES
export W GCCINC
for m in $MEASURES; do
        drop_caches
        echo " $m, cold (one run):"
        fuse_profile "$MC" bash -c "$m $MC/tree" || true
        echo " $m, warm (one run):"
        fuse_profile "$MC" bash -c "$m $MC/tree" || true
done

# --- report -------------------------------------------------------------------------
echo
echo "All rounds (ms; cold: one run after drop_caches, warm: mean of N runs):"
for t in $TARGETS; do
        for m in $MEASURES; do
                for c in cold warm; do printf '  %-8s %-13s %s\n' "$t" "${m}_$c" "${R[$t,${m}_$c]}"; done
        done
done
echo
echo "| measure | native | castore (ratio) | erofs (ratio) |"
echo "|---|---|---|---|"
for m in $MEASURES; do
        for c in cold warm; do
                k=${m}_$c
                nat=$(median ${R[native,$k]})
                line="| $k"
                [ "$c" = warm ] && line+=" (×${N[$m]}, per run)"
                line+=" | $nat ms"
                for t in castore erofs; do
                        v=$(median ${R[$t,$k]})
                        line+=" | $v ms ($(ratio "$v" "$nat")×)"
                done
                echo "$line |"
        done
done
echo
echo "castore daemon VmRSS after the rounds: $RSS kB"
