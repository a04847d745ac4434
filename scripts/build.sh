#!/bin/sh
# Configures (once) and builds castore.  Usage: scripts/build.sh [DIR] [release|asan|debug]
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build} kind=${2:-release}
case $kind in
  release) opts="--buildtype=debugoptimized" ;;
  asan)    opts="--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false" ;;
  debug)   opts="--buildtype=debug" ;;
  *) echo "usage: $0 [DIR] [release|asan|debug]" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup "$dir" $opts >/dev/null
fi
ninja -C "$dir" >/dev/null || ninja -C "$dir"
