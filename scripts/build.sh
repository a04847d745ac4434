#!/bin/sh
# Configures (once) and builds castore.
# Usage: scripts/build.sh [DIR] [release|asan|tsan|debug]
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (gcc)
#   tsan: ThreadSanitizer (clang; its test setup runs tests with ASLR off,
#         see tests/meson.build)
# Ninja runs one job per CPU (NINJA_JOBS overrides).
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build} kind=${2:-release}
case $kind in
  release) opts="--buildtype=debugoptimized" ;;
  asan)    opts="--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false" ;;
  tsan)    opts="--buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false"
           export CC=clang ;;
  debug)   opts="--buildtype=debug" ;;
  *) echo "usage: $0 [DIR] [release|asan|tsan|debug]" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$dir" $opts >/dev/null
fi
jobs=${NINJA_JOBS:-$(nproc 2>/dev/null || echo 2)}
ninja -C "$dir" -j "$jobs" >/dev/null || ninja -C "$dir" -j "$jobs"
