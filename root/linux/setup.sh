#!/bin/bash
# Prepare the host for warden's Linux containers. The server runs it at every
# start; running it again changes nothing.
#
# Env:
#   CONTAINER_DEPOT_PATH   where the container dirs live (required)
#   DISK_QUOTA_ENABLED     false (default): disk limits through the depot's
#                          btrfs disk pool (step 4); true: per-uid quotas on
#                          the depot's filesystem (needs kernel quota support)
#   CONTAINER_DEPOT_MOUNT_POINT_PATH
#                          quotas only: mount point of the depot's filesystem
#                          (default: found with stat)
#   POOL_NETWORK, ALLOW_NETWORKS, ALLOW_HOST_ACCESS
#                          passed on to ./net.sh setup
#   CONTAINER_ROOTFS_PATH  not used here (the server checks it)
#   WARDEN_CGROUP_DELEGATED
#                          cgroup v2: 1 when the server's cgroup is delegated
#                          to it, auto when systemd started it in a "server"
#                          leaf (see step 1 and cgroup_v2_prepare)
#
# Steps:
#  0. Kernel modules the containers need, loaded when missing (a stock
#     Debian kernel has them as modules, not all loaded at boot): overlay
#     (the root filesystems), veth and ifb (the interfaces; ifb with
#     numifbs=0, so that loading it makes no ifb0/ifb1), loop (the disk
#     pool; btrfs is loaded in step 4). A kernel without a module dir
#     (/lib/modules/<release>) has them built in, or cannot load any.
#  1. cgroups (cgroup_setup in skeleton/lib/cgroup.sh). The layout of
#     <cgroup root> (WARDEN_CGROUP_ROOT, default /sys/fs/cgroup): v2 when it
#     is a cgroup2 mount, hybrid when the v1 hierarchies are mounted and a
#     cgroup2 is at <root>/unified, else v1. Nothing is mounted or
#     remounted here. v1 and hybrid: the hierarchies the containers need
#     must be mounted at <root>/<subsystem>; creates the parent groups
#     <subsystem>/warden (cpuset: with the root's cpus and mems). v2: the
#     base group, <root>/warden, or with WARDEN_CGROUP_DELEGATED=1 (or auto,
#     set by config/warden.service, which has Delegate=yes) <own group>/warden,
#     the server's processes in the leaf <own group>/server; the
#     controllers cpu memory pids (and io, cpuset when the kernel has them)
#     enabled down to it. Records the layout in <depot>/.cgroup-layout
#     ("layout=v1|hybrid|v2", and "base=<dir>" on v2), which the container
#     scripts and the server read.
#  2. ./net.sh setup (the global iptables rules), when net.sh is there.
#  3. IPv4 forwarding on. It stays on (clear.sh does not turn it off).
#  4. Disk limits.
#     DISK_QUOTA_ENABLED=false: the disk pool. A sparse image
#     <depot>/.disk.img, as large as the filesystem holding the depot (so it
#     never allows more than the host has, and takes only the space written
#     to it), formatted btrfs with quotas (qgroups) on and loop-mounted at
#     <depot>/.disk. Each container's writable layer is a subvolume there;
#     its disk limit is the subvolume's qgroup limit (skeleton/limit_disk.sh).
#     Already mounted: nothing to do; an image that is not mounted is
#     mounted again. Without btrfs (kernel or btrfs-progs) it warns and goes
#     on without disk limits. root/linux/clear.sh removes the pool when the
#     depot is empty.
#     DISK_QUOTA_ENABLED=true: journaled user quotas (vfsv0) on the depot's
#     filesystem: remount with usrjquota, quotacheck, quotaon; unless they
#     are on already. Fails on kernels without quota support.
set -euo pipefail
shopt -s nullglob
[[ -n "${DEBUG:-}" ]] && set -x

here=$(cd "$(dirname -- "$0")" && pwd)
# common.sh reads ./etc/config only in a container dir: / is not one.
cd /
# shellcheck source=skeleton/lib/common.sh
source "$here/skeleton/lib/common.sh"
# shellcheck source=skeleton/lib/cgroup.sh
source "$here/skeleton/lib/cgroup.sh"
# shellcheck source=skeleton/lib/fs.sh
source "$here/skeleton/lib/fs.sh"

fail() {
  echo "setup.sh: $*" >&2
  exit 1
}

depot=${CONTAINER_DEPOT_PATH:-}
quota=${DISK_QUOTA_ENABLED:-false}
if [[ -z $depot ]]; then
  fail "CONTAINER_DEPOT_PATH is not set"
fi
if [[ ! -d $depot ]]; then
  fail "the depot $depot is not a directory"
fi
depot=$(realpath -- "$depot")
if [[ $quota != true && $quota != false ]]; then
  fail "DISK_QUOTA_ENABLED must be true or false, not '$quota'"
fi

# --- 0. kernel modules -------------------------------------------------------------

# load_module NAME [PARAM...]: modprobe NAME unless it is loaded already
# (/sys/module/NAME) or the kernel has no modules to load. A module that
# cannot be loaded fails setup (the Create that needs it would fail later,
# less clearly); an optional one (--optional) only warns.
load_module() {
  local optional=false release
  if [[ $1 == --optional ]]; then
    optional=true
    shift
  fi
  if [[ -d /sys/module/$1 ]]; then
    return 0
  fi
  read -r release </proc/sys/kernel/osrelease
  if [[ ! -d /lib/modules/$release ]] || ! command -v modprobe >/dev/null; then
    return 0
  fi
  if modprobe "$@"; then
    return 0
  fi
  if [[ $optional == true ]]; then
    echo "setup.sh: warning: cannot load the kernel module $1" >&2
    return 0
  fi
  fail "cannot load the kernel module $1 (modprobe $*)"
}

overlay_known=false
while read -r line; do
  if [[ ${line##*[[:space:]]} == overlay ]]; then
    overlay_known=true
  fi
done </proc/filesystems
if [[ $overlay_known == false ]]; then
  load_module overlay
fi
load_module veth
load_module ifb numifbs=0
if [[ $quota == false ]]; then
  load_module --optional loop
fi

# --- 1. cgroups ----------------------------------------------------------------
cgroup_setup "$depot" || fail "$cgroup_error"

# --- 2. global network rules --------------------------------------------------------
if [[ -x $here/net.sh ]]; then
  "$here/net.sh" setup
fi

# --- 3. forwarding ------------------------------------------------------------------
read -r forward </proc/sys/net/ipv4/ip_forward
if [[ $forward != 1 ]]; then
  echo 1 >/proc/sys/net/ipv4/ip_forward
fi

# --- 4. disk limits -------------------------------------------------------------------

# btrfs_available: true if the kernel and btrfs-progs can make the pool;
# otherwise says why on stderr.
btrfs_available() {
  local tool line
  for tool in btrfs mkfs.btrfs; do
    if ! command -v "$tool" >/dev/null; then
      echo "setup.sh: warning: $tool not found (Debian: apt-get install btrfs-progs)" >&2
      return 1
    fi
  done
  # Load it when it is a module (nothing to do when it is built in).
  if command -v modprobe >/dev/null; then
    modprobe btrfs 2>/dev/null || true
  fi
  while read -r line; do
    if [[ ${line##*[[:space:]]} == btrfs ]]; then
      return 0
    fi
  done </proc/filesystems
  echo "setup.sh: warning: the kernel has no btrfs support" >&2
  return 1
}

# setup_disk_pool: the btrfs pool at <depot>/.disk (see the header).
setup_disk_pool() {
  local pool=$depot/$disk_pool_name image=$depot/$disk_pool_name.img
  local blocks block_size
  if is_mounted "$pool" btrfs; then
    btrfs quota enable "$pool"
    return 0
  fi
  if is_mounted "$pool"; then
    fail "$pool is a mount point, but not of a btrfs filesystem; unmount it"
  fi
  if ! btrfs_available; then
    echo "setup.sh: warning: no disk pool: containers get no disk limits" >&2
    return 0
  fi
  if [[ ! -f $image ]]; then
    read -r blocks block_size < <(stat -f -c '%b %S' "$depot")
    # Made under another name and renamed when complete, so that a crash
    # never leaves a half-made image behind.
    rm -f "$image.new"
    truncate -s "$((blocks * block_size))" "$image.new"
    chmod 600 "$image.new"
    # -K: no discard; the new sparse image holds nothing to discard.
    mkfs.btrfs -q -K "$image.new" >/dev/null
    mv "$image.new" "$image"
  fi
  [[ -d $pool ]] || mkdir "$pool"
  # A loop mount detaches its loop device when it is unmounted.
  if ! mount -o loop "$image" "$pool"; then
    fail "could not mount the disk pool $image at $pool. If no container is" \
      "left in $depot, delete $image and run setup.sh again."
  fi
  # Only root (the overlay mounts) needs to get in.
  chmod 700 "$pool"
  btrfs quota enable "$pool"
}

# setup_quota: per-uid journaled quotas on the depot's filesystem.
setup_quota() {
  local mount_point=${CONTAINER_DEPOT_MOUNT_POINT_PATH:-} tool
  if [[ -z $mount_point ]]; then
    mount_point=$(stat -c %m "$depot")
  fi
  for tool in quotaon quotacheck setquota; do
    if ! command -v "$tool" >/dev/null; then
      fail "DISK_QUOTA_ENABLED=true needs $tool (Debian: apt-get install quota)"
    fi
  done
  # quotaon -p exits 0 when user quotas are off and non-zero when on.
  if ! quotaon -p -u "$mount_point" >/dev/null 2>&1; then
    return 0
  fi
  if ! mount -o remount,usrjquota=aquota.user,jqfmt=vfsv0 "$mount_point"; then
    fail "could not remount $mount_point with user quotas; does the kernel" \
      "support quotas? (Or set server.quota.disk_quota_enabled: false to use" \
      "the btrfs disk pool instead.)"
  fi
  quotacheck -u -m -c -F vfsv0 "$mount_point"
  if ! quotaon -u "$mount_point"; then
    fail "quotaon $mount_point failed; does the kernel support the vfsv0 quota format?"
  fi
}

# setup_jobs_pool: a tmpfs at <depot>/.jobs for the containers' job
# directories (see jobs_pool_name in skeleton/lib/fs.sh). Idempotent.
setup_jobs_pool() {
  local pool=$depot/$jobs_pool_name
  if is_mounted "$pool" tmpfs; then
    return 0
  fi
  [[ -d $pool ]] || mkdir "$pool"
  mount -t tmpfs -o mode=0700,nosuid,nodev,noexec warden-jobs "$pool"
}

# Only one setup.sh at a time works on a depot.
exec 9<"$depot"
flock 9
setup_jobs_pool
if [[ $quota == true ]]; then
  setup_quota
else
  setup_disk_pool
fi
