#!/bin/bash
# The whole test suite: installs what is missing, builds castore three ways
# and runs every meson test:
#   build/       release        unit tests, then every integration test
#   build-asan/  ASan + UBSan   unit tests
#   build-tsan/  ThreadSanitizer (clang)
#                               unit tests, then test-parallel-read (a FUSE
#                               mount served by the TSan build, read by
#                               many processes at once) and test-uring
#                               (the same over FUSE io_uring rings)
# Prints one line per test program and per integration check (ok - / not
# ok - / skip - NAME: REASON), then "N passed, N failed, N skipped".  Exit
# status 0 only if none failed.  Each test is a meson test (meson test -C
# build --list); a sanitizer report fails the test that triggers it (see
# tests/meson.build).
# Usage: scripts/test.sh [--unit] [--integration] [PATTERN]
#   PATTERN selects tests whose name contains it (e.g. fs, test-mount).
set -uo pipefail
cd "$(dirname "$0")/.."

want_unit=1 want_int=1 pattern=''
for a in "$@"; do
  case $a in
    --unit) want_int=0 ;;
    --integration) want_unit=0 ;;
    -*) echo "usage: $0 [--unit|--integration] [PATTERN]" >&2; exit 2 ;;
    *) pattern=$a ;;
  esac
done
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh test || { echo "0 passed, 1 failed, 0 skipped (dependencies missing)"; exit 1; }
scripts/build.sh build release >&2 || { echo "0 passed, 1 failed, 0 skipped (build)"; exit 1; }

passed=0 failed=0 skipped=0
failures=()
count() {  # reads TAP-ish lines on stdin, echoes them, updates the counters
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case $line in
      "ok - "*) passed=$((passed + 1)) ;;
      "not ok - "*) failed=$((failed + 1)); failures+=("${line#not ok - }") ;;
      "skip - "*) skipped=$((skipped + 1)) ;;
    esac
  done
}

tests_of() {  # DIR SUITE: the names of the suite's tests, filtered by PATTERN
  meson introspect "$1" --tests | python3 -c '
import json, sys
suite, pattern = sys.argv[1], sys.argv[2]
for t in json.load(sys.stdin):
    if any(s.split(":")[-1] == suite for s in t["suite"]) and pattern in t["name"]:
        print(t["name"])' "$2" "$pattern"
}

# unit DIR LABEL: runs the unit suite of a build (in parallel) and reports
# each program from meson's JSON log.  A program that skipped part of
# itself (it prints "SKIP: reason", e.g. when strace is missing) gets a
# skip line besides its ok line.
unit() {
  local dir=$1 label=$2 names
  names=$(tests_of "$dir" unit)
  [ -n "$names" ] || return 0
  rm -f "$dir/meson-logs/unit.json"
  # shellcheck disable=SC2086
  meson test -C "$dir" --no-rebuild --suite unit --num-processes "$jobs" --logbase unit $names >/dev/null 2>&1
  python3 - "$dir/meson-logs/unit.json" "$label" <<'EOF'
import json, re, sys
path, label = sys.argv[1], sys.argv[2]
for line in open(path, encoding="utf-8", errors="replace"):
    t = json.loads(line)
    name = t["name"].split(" / ")[-1]
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    res = t["result"]
    if res == "OK":
        print(f"ok - unit/{name} ({label})")
        for m in re.finditer(r"^\s*SKIP: (.*)$", out, re.M):
            print(f"skip - unit/{name} ({label}): part of it: {m.group(1)}")
    elif res == "SKIP":
        print(f"skip - unit/{name} ({label}): exit status 77")
    else:
        for l in out.splitlines()[-30:]:
            print("# " + l)
        how = "timed out" if res == "TIMEOUT" else f"exit status {t.get('returncode')}"
        print(f"not ok - unit/{name} ({label}): {how}")
EOF
}

# integration DIR LABEL: runs each integration test of a build, its output
# live (meson's own lines turned into comments), then its result
integration() {
  local dir=$1 label=$2 name start f0 s0 res
  for name in $(tests_of "$dir" integration); do
    echo "# --- $name ($label)"
    start=$SECONDS f0=$failed s0=$skipped
    rm -f "$dir/meson-logs/int-$name.json"
    count < <(meson test -C "$dir" --no-rebuild --suite integration --verbose --logbase "int-$name" "$name" 2>&1 |
      sed -E -e '/^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): +[0-9]+ *$/d' \
        -e '/^Full log written to /d' -e '/^Summary of Failures:$/d' -e '/^(―|-)+( ✀ +(―|-)+)?$/d' -e '/^$/d' \
        -e 's/^([0-9]+\/[0-9]+ [^ ]+ \/ |>>> )/# &/')
    res=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    t = json.loads(line)
    print(t["result"], t.get("returncode"))' "$dir/meson-logs/int-$name.json" 2>/dev/null | tail -1)
    case ${res%% *} in
      OK) ;;
      TIMEOUT) count <<<"not ok - $name ($label): timed out" ;;
      SKIP) [ $skipped -gt "$s0" ] || count <<<"skip - $name ($label): exit status 77" ;;
      '') count <<<"not ok - $name ($label): no result from meson" ;;
      *) [ $failed -gt "$f0" ] || count <<<"not ok - $name ($label): ${res%% *}, exit status ${res#* }" ;;
    esac
    echo "# $name took $((SECONDS - start))s"
  done
}

if [ $want_unit = 1 ]; then
  count < <(unit build release)
  if scripts/build.sh build-asan asan >&2; then
    count < <(unit build-asan asan+ubsan)
  else
    count <<<"not ok - build with ASan+UBSan"
  fi
fi
tsan_ok=0
if scripts/build.sh build-tsan tsan >&2; then
  tsan_ok=1
  [ $want_unit = 1 ] && count < <(unit build-tsan tsan)
else
  count <<<"not ok - build with ThreadSanitizer"
fi
if [ $want_int = 1 ]; then
  integration build release
  for t in test-parallel-read test-uring; do
    if [ $tsan_ok = 1 ] && [[ $t == *"$pattern"* ]]; then
      pattern=$t integration build-tsan tsan
    fi
  done
fi

for f in ${failures[@]+"${failures[@]}"}; do echo "# FAILED: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
