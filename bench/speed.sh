#!/bin/bash
# The speed goals in one run: runs, one after the other with the same
# castore binary, bench/fs.sh (native, castore unverified and verified,
# squashfuse, erofs), bench/walk1m.sh (990,100 entries), bench/inodes.sh
# (daemon memory per inode), bench/python.sh (Python and gcc on the
# mount), bench/uring.sh (per-request latency) and bench/import.sh, keeps
# each one's output in bench/out/speed/, and prints one table of every
# measure against its goal, from those outputs.
#
# The stores of the benchmarks' work directories are removed first, so
# that every mounted store is imported by the binary measured (the trees
# and images are kept: they do not depend on castore).
#
# Usage (root): bench/speed.sh   (about 25 minutes on 2 CPUs)
# Environment: CASTORE (default ./build/src/cli/castore), FUSE_URING (Y:
# the fuse module's enable_uring for the run, so mounts use io_uring; N:
# /dev/fuse), FS_DIR
# (/var/tmp/castore-bench), WALK_DIR (/var/tmp/castore-inodes), PY_DIR
# (/var/tmp/castore-python), IMPORT_ROUNDS (3), KEEP_STORES=1 to reuse the
# stores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CASTORE=${CASTORE:-$PWD/build/src/cli/castore}
FS_DIR=${FS_DIR:-/var/tmp/castore-bench}
WALK_DIR=${WALK_DIR:-/var/tmp/castore-inodes}
PY_DIR=${PY_DIR:-/var/tmp/castore-python}
[ "$(id -u)" = 0 ] || { echo "bench/speed.sh: needs root" >&2; exit 1; }
[ -x "$CASTORE" ] || { echo "bench/speed.sh: no castore binary at $CASTORE" >&2; exit 1; }
LOGS=bench/out/speed
mkdir -p "$LOGS"

# FUSE over io_uring where the kernel has it: the default mount uses it
# when the fuse module's enable_uring parameter is Y (a fresh boot has N).
# FUSE_URING=N measures /dev/fuse instead; the parameter is restored.
PARAM=/sys/module/fuse/parameters/enable_uring
TRANSPORT="/dev/fuse (this kernel has no FUSE over io_uring)"
if [ -e "$PARAM" ]; then
        SAVED_URING=$(cat "$PARAM")
        trap 'echo "$SAVED_URING" > "$PARAM"' EXIT
        echo "${FUSE_URING:-Y}" > "$PARAM"
        TRANSPORT=$([ "$(cat "$PARAM")" = Y ] && echo "FUSE over io_uring" || echo "/dev/fuse (enable_uring=N)")
fi
echo "transport of the castore mounts: $TRANSPORT" | tee "$LOGS/transport.log" >&2

if [ "${KEEP_STORES:-0}" != 1 ]; then
        rm -rf "$FS_DIR/store" "$WALK_DIR/store" "$PY_DIR/store"
fi

step() {  # NAME CMD...: runs CMD, its output in $LOGS/NAME.log
        local name=$1 s
        shift
        echo "== $name: $* ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        s=$(date +%s)
        "$@" >"$LOGS/$name.log" 2>&1 || { echo "bench/speed.sh: $name failed, see $LOGS/$name.log" >&2; exit 1; }
        echo "   $(($(date +%s) - s)) s" >&2
}
step fs bench/fs.sh "$FS_DIR"
step walk1m bench/walk1m.sh "$WALK_DIR"
step inodes bench/inodes.sh "$WALK_DIR"
step python bench/python.sh "$PY_DIR" 3
if [ -e /sys/module/fuse/parameters/enable_uring ]; then
        step uring bench/uring.sh
fi
export BENCH_NO_BUILD=1
step import bench/import.sh "${IMPORT_ROUNDS:-3}"
cp bench/out/import.md "$LOGS/import.md"

# --- the goal table, from the outputs ------------------------------------------
/usr/bin/python3 - "$LOGS" <<'EOF'
import re, sys
logs = sys.argv[1]

def rows(name):
    """The last Markdown table of a log, without its header: {first cell: [cells]}."""
    tables, cur = [], []
    for line in open(f"{logs}/{name}").read().splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    if cur:
        tables.append(cur)
    body = [l for l in tables[-1][1:] if not l.startswith("|---")]
    cells = [[c.strip() for c in l.strip().strip("|").split("|")] for l in body]
    return {c[0]: c[1:] for c in cells}

def ratios(cells):
    return [float(x) for c in cells for x in re.findall(r"\(([0-9.]+)×\)", c)]

out = []
def add(measure, goal, castore, squashfuse="", erofs=""):
    ok = "" if goal is None else "met" if castore <= goal else "missed"
    fmt = lambda v: f"{v:.2f}×" if isinstance(v, float) else str(v)
    out.append(f"| {measure} | {'' if goal is None else f'≤ {goal}×'} | {fmt(castore)} | {fmt(squashfuse)} | {fmt(erofs)} | {ok} |")

fs = rows("fs.log")
for k in ["walk_cold", "walk_warm", "tar_cold", "tar_warm", "dd_cold", "dd_warm", "rand4k", "par4"]:
    r = ratios(fs[k])  # passthrough, default, squashfuse, erofs
    goal = {"par4": 1.2, "tar_cold": 0.8}.get(k, 1.1)
    add(k + (" (moonshot)" if k == "tar_cold" else ""), goal, r[1], r[2], r[3])
w = rows("walk1m.log")
for k in w:
    r = ratios(w[k])
    add(k + " (1M entries)", 1.1, r[0], "", r[1])
py = rows("python.log")
for k in py:
    r = ratios(py[k])
    add("python " + k, None, r[0], "", r[1])  # no goal set: for the reading
for c in list(rows("inodes.log").values())[-1:]:
    per, back = int(c[4].replace(",", "")), c[5]
    grew = int(back.split()[0].replace(",", ""))
    out.append(f"| daemon memory per kernel-held inode (RssAnon) | ≤ 120 B | {per} B | | | {'met' if per <= 120 else 'missed'} |")
    out.append(f"| daemon memory after FORGET vs before the walk | ≤ +20 % | {back} | | | {'met' if grew <= 20 else 'missed'} |")
imp = {k: float(v[0]) for k, v in rows("import.md").items()}
ci = imp["castore import"]
add("import vs cp -a + sync", 1.2, ci / imp["cp -a + sync"])
add("import vs cp -a", 1.5, ci / imp["cp -a"])
out.append(f"| nix-store --add / import | ≥ 2× | {imp['nix-store --add'] / ci:.2f}× | | | {'met' if imp['nix-store --add'] / ci >= 2 else 'missed'} |")
try:
    u = rows("uring.log")
    for k, v in u.items():
        if v and v[0] == "io_uring / /dev/fuse":
            out.append(f"| {k} p50, io_uring / /dev/fuse | | {v[1]}× | | | |")
except FileNotFoundError:
    pass
print(open(f"{logs}/transport.log").read().strip())
print()
print("| measure | goal (vs native) | castore default | squashfuse | erofs | |")
print("|---|---|---|---|---|---|")
print("\n".join(out))
EOF
