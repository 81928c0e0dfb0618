#!/bin/bash
# Build the Debian root filesystem that every Linux container uses as its
# read-only lower layer.
#
#   root/linux/rootfs/setup.sh [TARGET]       (or env CONTAINER_ROOTFS_PATH)
#
# The build goes to TARGET.tmp and is renamed to TARGET only once it is
# complete, so an interrupted run never leaves a half-built rootfs behind.
# A finished rootfs carries the marker file TARGET/.warden-rootfs-complete;
# when it is present the script does nothing.
#
# Optional env: ROOTFS_SUITE (default bookworm), ROOTFS_MIRROR (default: the
# host's apt mirror for that suite, else http://deb.debian.org/debian),
# ROOTFS_EXTRA_PACKAGES (comma-separated, added to the package list),
# WARDEN_OFFLINE (non-empty: fail at once instead of debootstrapping when
# TARGET is not built yet),
# DEBUG (non-empty: trace).
set -euo pipefail
shopt -s nullglob
[[ -n "${DEBUG:-}" ]] && set -x

here=$(cd "${0%/*}" && pwd)
# The container /dev layout, shared with skeleton/setup.sh.
# shellcheck source=../skeleton/lib/dev.sh
source "$here/../skeleton/lib/dev.sh"
# host_mirror, shared with the VM image build (vm/image.py).
# shellcheck source=mirror.sh
source "$here/mirror.sh"

readonly MARKER_NAME=.warden-rootfs-complete
readonly DEFAULT_MIRROR=http://deb.debian.org/debian
readonly LOCALE=en_US.UTF-8

# Everything a job or the warden scripts expect to find inside a container.
packages=(
  bash rsync iproute2 netcat-openbsd iputils-ping procps perl-base locales
  passwd findutils mount hostname netbase tar gzip
)

log() { printf 'rootfs: %s\n' "$*"; }
die() { printf 'rootfs: error: %s\n' "$*" >&2; exit 1; }

main() {
  local target=${1:-${CONTAINER_ROOTFS_PATH:-}}
  [[ -n $target ]] || die "usage: $0 TARGET (or set CONTAINER_ROOTFS_PATH)"
  target=${target%/}
  local suite=${ROOTFS_SUITE:-bookworm}
  local work=$target.tmp

  if [[ -e $target/$MARKER_NAME ]]; then
    if rootfs_has_dev "$target"; then
      log "$target is already built; nothing to do"
    else
      # Built by an older version of this script: add what is missing.
      log "preparing the container /dev in $target"
      populate_dev "$target"
      echo "dev=$container_dev_version" >>"$target/$MARKER_NAME"
    fi
    return 0
  fi
  if [[ -e $target ]]; then
    if rmdir "$target" 2>/dev/null; then
      log "removed empty directory $target"
    else
      die "$target exists but was not built by this script (no $MARKER_NAME); move it away first"
    fi
  fi
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  if [[ -n "${WARDEN_OFFLINE:-}" ]]; then
    die "$target is not built and WARDEN_OFFLINE is set: debootstrap needs a mirror." \
      "Build it where the mirror is reachable (the VM image carries one) or unset WARDEN_OFFLINE"
  fi

  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
  fi

  local mirror=${ROOTFS_MIRROR:-}
  if [[ -z $mirror ]]; then
    # head may exit before host_mirror has written everything (SIGPIPE):
    # the first line is all we want.
    mirror=$(host_mirror "$suite" | head -n 1 || true)
    mirror=${mirror:-$DEFAULT_MIRROR}
  fi

  local include
  include=$(IFS=,; echo "${packages[*]}")
  [[ -n "${ROOTFS_EXTRA_PACKAGES:-}" ]] && include+=",$ROOTFS_EXTRA_PACKAGES"

  if [[ -e $work ]]; then
    log "removing the leftover of an interrupted build: $work"
    rm -rf --one-file-system "$work"
  fi
  mkdir -p "$(dirname "$target")"

  # Any mount debootstrap makes (proc, sys) lives in a private namespace and
  # disappears with it, even if the build is interrupted.
  log "debootstrap $suite from $mirror into $work"
  unshare -m debootstrap --variant=minbase --include="$include" "$suite" "$work" "$mirror"

  log "generating the $LOCALE locale"
  if ! grep -q "^$LOCALE UTF-8" "$work/etc/locale.gen"; then
    echo "$LOCALE UTF-8" >>"$work/etc/locale.gen"
  fi
  unshare -m chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin locale-gen
  printf 'LANG=%s\n' "$LOCALE" >"$work/etc/default/locale"

  log "trimming package caches"
  rm -rf "$work"/var/cache/apt/archives/*.deb "$work"/var/lib/apt/lists/*
  # Containers get their own resolv.conf, hostname and hosts at create time.
  : >"$work/etc/hostname"

  # The /dev every container starts with, so that containers need not
  # create it in their own writable layer.
  log "preparing the container /dev"
  populate_dev "$work"

  {
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "suite=$suite"
    echo "dev=$container_dev_version"
  } >"$work/$MARKER_NAME"
  mv -T "$work" "$target"
  log "done: $target"
}

main "$@"
