#!/usr/bin/env bash
# Build and install the slurm-drmaa library (DRMAA 1.0 for Slurm) that backend
# "slurm_drmaa" loads, against this machine's Slurm headers. Debian 12, run as root.
#
# No package registry reachable here ships slurm-drmaa, so it is built from source:
#   GRIDMAP_SLURM_DRMAA_TARBALL=/path/to/slurm-drmaa-X.Y.Z.tar.gz   a release or source
#       tarball to build (a release has `configure`; a git snapshot has `autogen.sh`);
#   otherwise the source kept beside the project, ../shared/vendor/slurm-drmaa-*.tar.gz
#       (slurm-drmaa 1.1.6 with its drmaa_utils submodule filled in).
#   GRIDMAP_SLURM_DRMAA_PREFIX=DIR   where it is installed (default /opt/slurm-drmaa)
#   GRIDMAP_SLURM_APT_TIMEOUT=SEC    how long to wait for a busy apt/dpkg (default 300)
#
# Idempotent: when DIR/lib/libdrmaa.so exists and was built from the same tarball (its
# sha256 is recorded beside it), it only prints the library's path. Prints the path of
# libdrmaa.so on its last line, for DRMAA_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."

PREFIX=${GRIDMAP_SLURM_DRMAA_PREFIX:-/opt/slurm-drmaa}
APT_TIMEOUT=${GRIDMAP_SLURM_APT_TIMEOUT:-300}
log() { printf 'slurm/drmaa: %s\n' "$*" >&2; }
die() { printf 'slurm/drmaa: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/apt.sh
. scripts/apt.sh

tarball=${GRIDMAP_SLURM_DRMAA_TARBALL:-}
if [[ -z $tarball ]]; then
  for candidate in ../shared/vendor/slurm-drmaa-*.tar.gz; do
    [[ -f $candidate ]] && tarball=$candidate
  done
  [[ -n $tarball ]] || die "no slurm-drmaa source: set GRIDMAP_SLURM_DRMAA_TARBALL to a \
slurm-drmaa release tarball (https://github.com/natefoo/slurm-drmaa/releases)"
fi
[[ -f $tarball ]] || die "GRIDMAP_SLURM_DRMAA_TARBALL=$tarball is not a file"
[[ $EUID -eq 0 ]] || die "must run as root (it installs build packages and writes $PREFIX)"

library=$PREFIX/lib/libdrmaa.so
stamp=$PREFIX/lib/gridmap-source.sha256
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
if [[ -e $library && -f $stamp && $(cat "$stamp") == "$sum" ]]; then
  echo "$library"
  exit 0
fi

T0=$SECONDS
# libslurm-dev must match the running Slurm (both come from Debian's bookworm packages);
# the rest is what autogen.sh and the drmaa_utils parsers need.
needed=()
for package in build-essential autoconf automake libtool gperf ragel bison libslurm-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || needed+=("$package")
done
if ((${#needed[@]})); then
  log "installing ${needed[*]}"
  apt_get update
  apt_get install -y --no-install-recommends "${needed[@]}"
fi

build=$(mktemp -d /var/tmp/slurm-drmaa-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
tar -xzf "$tarball" -C "$build"
source_dir=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[[ -n $source_dir ]] || die "$tarball holds no source folder"
out=$build/build.log
(
  cd "$source_dir"
  if [[ ! -x configure ]]; then
    ./autogen.sh
  fi
  ./configure --prefix="$PREFIX"
  make -j"$(nproc)"
  make install
) >"$out" 2>&1 || { tail -n 40 "$out" >&2; die "building $tarball failed (log above)"; }
[[ -e $library ]] || die "the build installed no $library"
echo "$sum" >"$stamp"
log "built $(basename "$tarball") into $PREFIX in $((SECONDS - T0)) s"
echo "$library"
