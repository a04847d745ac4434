#!/bin/sh
# Builds castore's Debian package with `dpkg-buildpackage -us -uc -b` in a
# scratch copy of the repository (dpkg-buildpackage writes its results
# into the parent directory of the tree it builds, and its build directory
# into the tree).  The copy holds the working tree as git sees it: tracked
# files with their uncommitted changes, and untracked files that are not
# ignored; with --commit REV, exactly that commit.  Build dependencies
# missing here are installed from Debian (scripts/deps.sh deb, then
# `apt-get build-dep` for whatever debian/control lists besides).
#
# The .deb files, .buildinfo, .changes and build.log go to OUTDIR (default
# build-deb/); the path of castore's .deb is printed on stdout, the rest
# goes to stderr.  Exit status: 0 built, 1 the build failed, 3 a build
# dependency is missing and could not be installed (not root, no network).
# Usage: scripts/deb.sh [--commit REV] [OUTDIR]
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

rev='' outdir=build-deb
while [ $# -gt 0 ]; do
  case $1 in
    --commit) [ $# -ge 2 ] || { echo "usage: $0 [--commit REV] [OUTDIR]" >&2; exit 2; }
              rev=$2; shift ;;
    -*) echo "usage: $0 [--commit REV] [OUTDIR]" >&2; exit 2 ;;
    *) outdir=$1 ;;
  esac
  shift
done
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

scripts/deps.sh deb || { echo "deb: the packaging tools are missing (scripts/deps.sh deb)" >&2; exit 3; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/castore-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/castore
mkdir "$src"

# --- the scratch copy
if [ -n "$rev" ]; then
  git archive --format=tar "$rev" | tar -xf - -C "$src"
elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Tracked files deleted in the working tree are left out.
  # shellcheck disable=SC2016
  git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do { [ -e "$f" ] || [ -L "$f" ]; } && printf "%s\0" "$f"; done; :' sh |
    tar --null -T - -cf - | tar -xf - -C "$src"
else
  tar -cf - --exclude='./build*' --exclude='./obj-*' --exclude=./.git . | tar -xf - -C "$src"
fi
echo "deb: building castore $(dpkg-parsechangelog -l "$src/debian/changelog" -S Version) from ${rev:-the working tree of $top}" >&2

# --- build dependencies (debian/control's Build-Depends)
cd "$src"
if ! unmet=$(dpkg-checkbuilddeps 2>&1); then
  if [ "$(id -u)" != 0 ]; then
    echo "deb: $unmet (run this script as root to install them)" >&2
    exit 3
  fi
  echo "deb: installing the build dependencies: ${unmet#*: }" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get build-dep -y -qq --no-install-recommends "$src" ||
    { apt-get update -qq && apt-get build-dep -y -qq --no-install-recommends "$src"; }; } >&2 ||
    { echo "deb: could not install the build dependencies" >&2; exit 3; }
fi

# --- the build (one ninja job per CPU, as scripts/build.sh)
jobs=${NINJA_JOBS:-$(nproc 2>/dev/null || echo 2)}
if ! dpkg-buildpackage -us -uc -b -J"$jobs" >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  cp "$work/build.log" "$outdir/build.log"
  echo "deb: dpkg-buildpackage failed; its log is $outdir/build.log" >&2
  exit 1
fi

# --- the results: replace the previous build's
for f in "$outdir"/castore_* "$outdir"/castore-dbgsym_*; do
  case $f in *.deb|*.ddeb|*.buildinfo|*.changes) rm -f "$f" ;; esac
done
cp "$work/build.log" "$outdir/build.log"
for f in "$work"/*.deb "$work"/*.ddeb "$work"/*.buildinfo "$work"/*.changes; do
  if [ -e "$f" ]; then cp "$f" "$outdir/"; fi
done
deb=$(ls "$outdir"/castore_*.deb)
echo "deb: built $deb (with its .buildinfo, .changes and build.log)" >&2
echo "$deb"
