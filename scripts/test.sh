#!/bin/bash
# Installs what is missing, builds castore (plain and ASan+UBSan), runs the
# unit tests under both builds and every integration test, and ends with a
# line "N passed, N failed, N skipped".  Exit status 0 only if none failed.
# Usage: scripts/test.sh [--unit] [--integration] [PATTERN]
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

want_unit=1 want_int=1 pattern=''
for a in "$@"; do
  case $a in
    --unit) want_int=0 ;;
    --integration) want_unit=0 ;;
    -*) echo "usage: $0 [--unit|--integration] [PATTERN]" >&2; exit 2 ;;
    *) pattern=$a ;;
  esac
done

scripts/deps.sh test || { echo "0 passed, 1 failed (dependencies missing)"; exit 1; }
scripts/build.sh build release >&2 || { echo "0 passed, 1 failed (build)"; exit 1; }

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

unit() {  # build-dir label
  local dir=$1 label=$2 t
  for t in $(meson test -C "$dir" --no-rebuild --list --suite unit 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+$'); do
    [ -n "$pattern" ] && [[ $t != *$pattern* ]] && continue
    if meson test -C "$dir" --no-rebuild --suite unit "$t" --print-errorlogs >"$dir/unit-$t.log" 2>&1; then
      echo "ok - unit/$t ($label)"
    else
      sed 's/^/# /' "$dir/unit-$t.log" | tail -30
      echo "not ok - unit/$t ($label)"
    fi
  done
}

if [ $want_unit = 1 ]; then
  count < <(unit build release)
  if scripts/build.sh build-asan asan >&2; then
    count < <(unit build-asan asan+ubsan)
  else
    count < <(echo "not ok - build with ASan+UBSan")
  fi
fi

if [ $want_int = 1 ]; then
  export CASTORE=$SRC/build/src/cli/castore BUILD_DIR=$SRC/build SRC_DIR=$SRC
  for t in tests/integration/test-*.sh; do
    [ -e "$t" ] || continue
    [ -n "$pattern" ] && [[ $t != *$pattern* ]] && continue
    echo "# --- $t"
    start=$SECONDS
    count < <(timeout -k 10 900 bash "$t" 2>&1; rc=$?; [ $rc -ne 0 ] && echo "not ok - $t exited $rc")
    echo "# $t took $((SECONDS - start))s"
  done
fi

for f in ${failures[@]+"${failures[@]}"}; do echo "# FAILED: $f"; done
if [ $skipped -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ $failed -eq 0 ]
