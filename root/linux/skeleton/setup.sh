#!/usr/bin/env bash
# Prepare a new container dir (run once by root/linux/create.sh, inside a
# private mount namespace: every mount made here vanishes when it exits).
#
# Env: id, network_host_ip, network_container_ip, network_netmask,
# user_uid, rootfs_path, allow_nested_warden, container_iface_mtu,
# dns_servers (newline-separated, may be empty).
#
# Writes etc/config and fills the container's writable layer: /dev nodes
# (unless the rootfs already has them), hostname, hosts, resolv.conf and
# the vcap user and group.
set -euo pipefail
shopt -s nullglob
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/dev.sh
source lib/dev.sh

require_params id network_host_ip network_container_ip user_uid rootfs_path
if [[ ! $id =~ ^[a-z0-9]{1,11}$ ]]; then
  echo "setup.sh: id must be 1-11 characters of [a-z0-9]: '$id'" >&2
  exit 1
fi
if [[ ! $user_uid =~ ^[1-9][0-9]*$ ]]; then
  echo "setup.sh: user_uid must be a positive number: '$user_uid'" >&2
  exit 1
fi
if [[ ! -d $rootfs_path/etc ]]; then
  echo "setup.sh: rootfs_path $rootfs_path is not a root filesystem" >&2
  exit 1
fi
if [[ $rootfs_path != /* || -L $rootfs_path ]]; then
  rootfs_path=$(readlink -f "$rootfs_path")
fi
netmask_to_prefix "$network_netmask"

# 1. etc/config: everything later scripts and hooks need, including where
#    the writable layer lives (a subvolume of the depot's disk pool when
#    there is one). Written before anything is made outside this dir, so
#    that destroy.sh finds it all.
mkdir -p etc run "$rootfs_mount_dir"
writable_layer_choose
{
  printf '# written by setup.sh; sourced by lib/common.sh\n'
  for key in id network_netmask network_host_ip network_container_ip user_uid \
    rootfs_path allow_nested_warden container_iface_mtu dns_servers writable_layer_dir; do
    printf '%s=%q\n' "$key" "${!key}"
  done
  printf 'network_host_iface=%q\n' "w-$id-0"
  printf 'network_container_iface=%q\n' "w-$id-1"
  printf 'network_ifb_iface=%q\n' "w-$id-2"
} >etc/config

# 2. The writable layer, and the container's root filesystem (only in this
#    mount namespace).
setup_fs
root=$rootfs_mount_dir

# 3. /dev: a fixed set of nodes (pts, ptmx and shm come at start). A rootfs
#    built by rootfs/setup.sh has them already.
if ! rootfs_has_dev "$rootfs_path"; then
  populate_dev "$root"
fi

# 4. Names.
printf '%s\n' "$id" >"$root/etc/hostname"
printf '127.0.0.1 localhost\n%s %s\n' "$network_container_ip" "$id" >"$root/etc/hosts"

resolv=()
if [[ -r /etc/resolv.conf ]]; then
  mapfile -t resolv </etc/resolv.conf
fi
if [[ -n ${dns_servers//[[:space:]]/} ]]; then
  for server in $dns_servers; do
    printf 'nameserver %s\n' "$server"
  done
elif ((${#resolv[@]} == 1)) && [[ ${resolv[0]} == "nameserver 127.0.0.1" ]]; then
  # A resolver on the host's loopback is reachable at the host's end.
  printf 'nameserver %s\n' "$network_host_ip"
elif ((${#resolv[@]} > 0)); then
  printf '%s\n' "${resolv[@]}"
fi >"$root/etc/resolv.conf.warden"
# Replace rather than write through: the rootfs may have a symlink there.
mv -f "$root/etc/resolv.conf.warden" "$root/etc/resolv.conf"

# 5. The vcap user and group, uid = gid = user_uid. An existing vcap is
#    remapped and its files re-owned (which copies them up: slow, rare).
db_field "$root/etc/group" vcap 2
old_gid=$REPLY
db_field "$root/etc/passwd" vcap 2
old_uid=$REPLY
if [[ -z $old_gid && -z $old_uid ]]; then
  # One process: useradd -U makes the group too, with gid = uid when free.
  run_in_root "$root" useradd -m -U -u "$user_uid" -s /bin/bash vcap
  db_field "$root/etc/group" vcap 2
  if [[ $REPLY != "$user_uid" ]]; then
    echo "setup.sh: gid $user_uid is taken in the rootfs; vcap got gid $REPLY" >&2
    exit 1
  fi
else
  if [[ -z $old_gid ]]; then
    run_in_root "$root" groupadd -g "$user_uid" vcap
  elif [[ $old_gid != "$user_uid" ]]; then
    run_in_root "$root" groupmod -g "$user_uid" vcap
    run_in_root "$root" find / -xdev -gid "$old_gid" -exec chgrp -h "$user_uid" {} +
  fi
  if [[ -z $old_uid ]]; then
    run_in_root "$root" useradd -m -u "$user_uid" -g "$user_uid" -s /bin/bash vcap
  elif [[ $old_uid != "$user_uid" ]]; then
    run_in_root "$root" usermod -u "$user_uid" -g "$user_uid" vcap
    run_in_root "$root" find / -xdev -uid "$old_uid" -exec chown -h "$user_uid" {} +
  fi
fi
