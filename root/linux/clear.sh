#!/bin/bash
# Destroy every container in a depot (in parallel), then remove what is left
# in the kernel of containers whose dir is gone: warden instance cgroups,
# w-<id>-* interfaces and writable layers in the disk pool. When no container
# is left, also undo root setup.sh: the disk pool (unmount, loop device,
# image), the empty <subsystem>/warden parent cgroups and the global iptables
# rules of POOL_NETWORK. Operator tool; the server does not use it.
#
#   clear.sh [--all] DEPOT_DIR
#
# Several warden servers (each with its own depot and pool) may share a host,
# so by default only leftovers that are certainly dead are removed: instance
# cgroups with no process in them and interfaces without a cgroup. --all also
# removes leftovers that still run, and every global rule of every pool: use
# it only when no other warden server runs on this host.
#
# Env: POOL_NETWORK  the pool whose global iptables rules go (net.sh teardown);
#                    without it (and without --all) they stay.
set -euo pipefail
shopt -s nullglob
[[ -n "${DEBUG:-}" ]] && set -x

sweep_all=false
if [[ ${1:-} == --all ]]; then
  sweep_all=true
  shift
fi
if [[ $# -ne 1 ]]; then
  echo "usage: $0 [--all] DEPOT_DIR" >&2
  exit 1
fi
depot=$(realpath -m -- "$1")
here=$(cd "$(dirname -- "$0")" && pwd)
# common.sh reads ./etc/config only in a container dir: / is not one.
cd /

status=0
pids=()
for entry in "$depot"/*/; do
  entry=${entry%/}
  if [[ ${entry##*/} == tmp ]]; then
    continue
  fi
  echo "Destroying $entry"
  "$here/destroy.sh" "$entry" &
  pids+=("$!")
done
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done

# Ids of the containers whose dir survived (a failed destroy): keep theirs.
declare -A alive=()
for config in "$depot"/*/etc/config; do
  while IFS='=' read -r key value; do
    if [[ $key == id ]]; then
      alive[$value]=1
    fi
  done <"$config"
done

# shellcheck source=skeleton/lib/common.sh
source "$here/skeleton/lib/common.sh"
# shellcheck source=skeleton/lib/cgroup.sh
source "$here/skeleton/lib/cgroup.sh"
# shellcheck source=skeleton/lib/ifaces.sh
source "$here/skeleton/lib/ifaces.sh"
# shellcheck source=skeleton/lib/processes.sh
source "$here/skeleton/lib/processes.sh"
# shellcheck source=skeleton/lib/fs.sh
source "$here/skeleton/lib/fs.sh"
cgroup_load_layout "$depot"

declare -A leftover=()
cgroup_instance_ids
for cid in "${cgroup_ids[@]}"; do
  leftover[$cid]=1
done
for dev in /sys/class/net/w-*-[0-9]; do
  name=${dev##*/}
  name=${name#w-}
  leftover[${name%-*}]=1
done

# Container chains (warden-i-<id>, not the -log companions).
while read -r chain _; do
  chain=${chain#:warden-i-}
  [[ $chain == *-log ]] || leftover[$chain]=1
done < <(iptables-save 2>/dev/null | grep '^:warden-i-' || true)

for id in "${!leftover[@]}"; do
  if [[ -n ${alive[$id]:-} ]]; then
    continue
  fi
  if [[ $sweep_all == false ]] && cgroup_has_processes "$id"; then
    continue # probably another server's container
  fi
  echo "Removing leftovers of $id"
  destroy_kernel_objects || status=1
  if [[ -x $here/skeleton/net.sh ]]; then
    id=$id "$here/skeleton/net.sh" teardown || status=1
  fi
done

# Writable layers in the disk pool whose container is gone.
pool=$depot/$disk_pool_name
image=$depot/$disk_pool_name.img
if is_mounted "$pool" btrfs; then
  for subvol in "$pool"/*/; do
    subvol=${subvol%/}
    if [[ -n ${alive[${subvol##*/}]:-} ]]; then
      continue
    fi
    echo "Removing orphaned writable layer $subvol"
    pool_subvolume_delete "$subvol" || status=1
  done
  btrfs qgroup clear-stale "$pool" >/dev/null 2>&1 || true
fi

# Job directories on the depot's tmpfs whose container is gone.
jobs_pool=$depot/$jobs_pool_name
if is_mounted "$jobs_pool" tmpfs; then
  for dir in "$jobs_pool"/*/; do
    dir=${dir%/}
    if [[ -z ${alive[${dir##*/}]:-} ]]; then
      rm -rf --one-file-system -- "$dir" || status=1
    fi
  done
fi

# With no container left in the depot, the rest goes too: the disk pool
# (mount, loop device, image), the warden parent cgroups (if no other depot
# uses them), the cgroup layout record and the global iptables rules.
containers=()
for entry in "$depot"/*/; do
  entry=${entry%/}
  if [[ ${entry##*/} != tmp ]]; then
    containers+=("$entry")
  fi
done
if ((${#containers[@]} > 0)); then
  exit "$status"
fi

# detach_image_loops: wait until no loop device is backed by the image. A
# loop mount's device goes away by itself soon after the unmount, unless
# another mount namespace still holds a copy of the mount: any process that
# made a new mount namespace (unshare, ip netns exec, a service with private
# mounts) while the pool was mounted keeps it alive until it exits. The
# image is deleted anyway (the loop device holds it open); the device is
# released, and the space freed, when the last holder is gone.
detach_image_loops() {
  local try line info
  local -a devices=() holders=()
  for ((try = 0; try < 40; try++)); do
    devices=()
    while IFS= read -r line; do
      devices+=("${line%%:*}")
    done < <(losetup -j "$image")
    if ((${#devices[@]} == 0)); then
      return 0
    fi
    if ((try == 10)); then
      losetup -d "${devices[@]}" 2>/dev/null || true
    fi
    sleep 0.05
  done
  holders=()
  while IFS= read -r info; do
    info=${info%/mountinfo}
    holders+=("${info#/proc/}")
  done < <(grep -lF " $pool " /proc/[0-9]*/mountinfo 2>/dev/null)
  echo "clear.sh: warning: ${devices[*]} (the disk pool's loop device) stays until" \
    "the processes still holding a copy of the pool's mount exit:" \
    "${holders[*]:-none found}" >&2
}

if is_mounted "$jobs_pool"; then
  umount "$jobs_pool" || status=1
fi
if [[ -d $jobs_pool ]] && ! is_mounted "$jobs_pool"; then
  rmdir "$jobs_pool" || status=1
fi

if is_mounted "$pool"; then
  echo "Unmounting the disk pool $pool"
  umount "$pool" || status=1
fi
if ! is_mounted "$pool"; then
  if [[ -f $image ]]; then
    detach_image_loops
    rm -f "$image" "$image.new"
  fi
  if [[ -d $pool ]]; then
    rmdir "$pool" || status=1
  fi
fi

find_cgroup_subsystems
cgroup_remove_parents
rm -f "$depot/$cgroup_layout_name" "$depot/$cgroup_layout_name.new"

if [[ -x $here/net.sh ]]; then
  if [[ $sweep_all == true ]]; then
    env -u POOL_NETWORK "$here/net.sh" teardown || status=1
  elif [[ -n ${POOL_NETWORK:-} ]]; then
    "$here/net.sh" teardown || status=1
  fi
fi
exit "$status"
