# shellcheck shell=bash
# The /dev a container starts with, and lookups in a root filesystem's
# /etc/passwd and /etc/group without running anything inside it.
#
# Sourced by skeleton/setup.sh (per container, into the writable layer) and
# by rootfs/setup.sh (once, into the shared rootfs, which then carries the
# line "dev=$container_dev_version" in its .warden-rootfs-complete marker and
# spares every container the work). /dev/pts, /dev/shm and the target of
# /dev/ptmx are mounted at start by hook-child-after-pivot.sh.

container_dev_version=1
# name major minor: character devices, mode 0666.
container_dev_nodes=("null 1 3" "zero 1 5" "random 1 8" "urandom 1 9" "tty 5 0" "fuse 10 229")
# name target: symlinks.
container_dev_links=("fd /proc/self/fd" "stdin fd/0" "stdout fd/1" "stderr fd/2" "ptmx pts/ptmx")

# db_field FILE NAME FIELD: REPLY = field FIELD (0-based) of NAME's line in
# the colon-separated FILE, or "" when there is none.
db_field() {
  local line
  local -a fields
  REPLY=
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == "$2:"* ]]; then
      IFS=: read -r -a fields <<<"$line"
      REPLY=${fields[$3]:-}
      return 0
    fi
  done <"$1"
}

# run_in_root ROOT CMD...: run CMD chrooted into ROOT with a clean environment.
run_in_root() {
  local root=$1
  shift
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$root" "$@"
}

# ensure_fuse_group ROOT: a system group "fuse" owns /dev/fuse.
ensure_fuse_group() {
  db_field "$1/etc/group" fuse 2
  if [[ -z $REPLY ]]; then
    run_in_root "$1" groupadd --system fuse
  fi
}

# populate_dev ROOT: replace ROOT/dev with the container's set.
populate_dev() {
  local root=$1 entry name major minor target tty_gid fuse_gid
  rm -rf "${root:?}/dev"
  mkdir -p "$root/dev/pts" "$root/dev/shm"
  for entry in "${container_dev_nodes[@]}"; do
    read -r name major minor <<<"$entry"
    mknod -m 666 "$root/dev/$name" c "$major" "$minor"
  done
  for entry in "${container_dev_links[@]}"; do
    read -r name target <<<"$entry"
    ln -s "$target" "$root/dev/$name"
  done
  ensure_fuse_group "$root"
  db_field "$root/etc/group" tty 2
  tty_gid=${REPLY:-0}
  db_field "$root/etc/group" fuse 2
  fuse_gid=${REPLY:-0}
  chown "0:$tty_gid" "$root/dev/tty"
  chown "0:$fuse_gid" "$root/dev/fuse"
}

# rootfs_has_dev ROOTFS: true if ROOTFS was prepared by rootfs/setup.sh with
# the current /dev layout.
rootfs_has_dev() {
  local line
  [[ -r $1/.warden-rootfs-complete ]] || return 1
  while IFS= read -r line; do
    if [[ $line == "dev=$container_dev_version" ]]; then
      return 0
    fi
  done <"$1/.warden-rootfs-complete"
  return 1
}
