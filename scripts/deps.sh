#!/bin/sh
# Install the Debian packages castore needs to build, test and benchmark,
# skipping those already present.  Usage: scripts/deps.sh [build|test|bench|deb]
# (deb: the tools that build castore's Debian package, scripts/deb.sh)
set -eu

build="meson ninja-build pkg-config gcc libc6-dev libprotobuf-c-dev
  protobuf-c-compiler liblmdb-dev librust-blake3-dev libssl-dev libseccomp-dev libgrpc-dev fuse3
  liblzma-dev libzstd-dev libbz2-dev libbrotli-dev libcurl4-openssl-dev libpq-dev libmicrohttpd-dev"
test="$build b3sum nix-bin attr qemu-system-x86 busybox-static xz-utils
  cpio file clang libclang-rt-14-dev python3 strace squashfuse squashfs-tools e2fsprogs
  python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
  man-db groff-base psmisc systemd postgresql-15 radosgw ceph-mon ceph-osd"
bench="$test squashfs-tools squashfuse erofs-utils hyperfine time"
deb="$build dpkg-dev debhelper"

case "${1:-build}" in
  build) want=$build ;;
  test)  want=$test ;;
  bench) want=$bench ;;
  deb)   want=$deb ;;
  *) echo "usage: $0 [build|test|bench|deb]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages:$missing (run this script as root)" >&2
  exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2 ||
  { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends $missing >&2; }
