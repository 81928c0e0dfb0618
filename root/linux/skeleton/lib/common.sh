# shellcheck shell=bash
# Shared definitions for the container scripts and hooks.
#
# Sourced with the container dir as cwd (every script cd's there first).
# Loads etc/config (written by setup.sh) when the cwd is a container dir;
# values already in the environment are overridden by it. (The root scripts
# source this from /, where a host /etc/config must never be read.)

if [[ -f etc/config && -f lib/common.sh ]]; then
  # shellcheck source=/dev/null
  source etc/config
fi

# --- parameters ---------------------------------------------------------------
# From etc/config, else from the environment (the server's names). Empty
# means "not given"; require_params makes a script insist on some.
id=${id:-}                                   # 11-char container id
network_host_ip=${network_host_ip:-}         # host end of the /30
network_container_ip=${network_container_ip:-}
network_netmask=${network_netmask:-255.255.255.252}
user_uid=${user_uid:-}                       # uid and gid of vcap
rootfs_path=${rootfs_path:-}                 # read-only lower layer
allow_nested_warden=${allow_nested_warden:-false}
container_iface_mtu=${container_iface_mtu:-1500}
dns_servers=${dns_servers:-}                 # newline-separated, may be empty

# require_params NAME... : fail with a message naming the first empty one.
require_params() {
  local name
  for name in "$@"; do
    if [[ -z ${!name:-} ]]; then
      echo "$0: parameter '$name' is not set (etc/config or environment)" >&2
      return 1
    fi
  done
}

# --- kernel object names ------------------------------------------------------

# Root of the cgroup v1 hierarchies; every container lives in
# $cgroup_root/<subsystem>/warden/instance-<id>.
cgroup_root=${WARDEN_CGROUP_ROOT:-/sys/fs/cgroup}
# Must be mounted; start fails without them.
cgroup_required_subsystems=(cpu cpuacct cpuset memory devices)
# Used when mounted.
cgroup_optional_subsystems=(pids freezer)

# Fill the array cgroup_mounted with the mounted required and optional
# subsystems.
find_cgroup_subsystems() {
  local s
  cgroup_mounted=()
  for s in "${cgroup_required_subsystems[@]}" "${cgroup_optional_subsystems[@]}"; do
    if [[ -d $cgroup_root/$s ]]; then
      cgroup_mounted+=("$s")
    fi
  done
}

# cgroup_dir SUBSYSTEM: REPLY = the container's group in that hierarchy.
cgroup_dir() {
  REPLY=$cgroup_root/$1/warden/instance-$id
}

# cgroup_write FILE VALUE: write VALUE to a cgroup control file. On failure
# returns 1 with the kernel's reason (e.g. "Device or resource busy") in
# cgroup_error.
cgroup_write() {
  local out
  if out=$({ printf '%s\n' "$2" >"$1"; } 2>&1); then
    return 0
  fi
  # bash says "<script>: line N: printf: write error: <reason>" or
  # "<script>: line N: <file>: <reason>"; keep the reason.
  # shellcheck disable=SC2034 # read by the scripts that source this file
  cgroup_error=${out##*: }
  return 1
}

# cgroup_fill_cpuset PARENT CHILD: a cpuset group takes tasks only once it
# has cpus and mems; empty values are copied from the parent.
cgroup_fill_cpuset() {
  local f value
  for f in cpuset.cpus cpuset.mems; do
    value=
    read -r value <"$2/$f" || true
    if [[ -z $value ]]; then
      read -r value <"$1/$f" || true
      printf '%s\n' "$value" >"$2/$f"
    fi
  done
}

# Interface names: w-<id>-0 is the host side of the veth pair, w-<id>-1 the
# container side, w-<id>-2 the ifb that shapes the container's egress.
# w-<11 chars>-N is 15 characters, the longest name the kernel accepts.

# --- filesystem ---------------------------------------------------------------

# is_mounted DIR [FSTYPE]: true if DIR (relative to cwd or absolute) is a
# mount point in this mount namespace (of type FSTYPE, if given). Reads
# /proc/self/mounts; no subprocess.
is_mounted() {
  local path=$1 mnt type
  [[ $path == /* ]] || path=$PWD/$path
  while read -r _ mnt type _; do
    if [[ $mnt == "$path" && ( -z ${2:-} || $type == "$2" ) ]]; then
      return 0
    fi
  done </proc/self/mounts
  return 1
}

# The depot's disk pool: a btrfs filesystem (a sparse image, loop-mounted by
# root/linux/setup.sh) at <depot>/.disk, next to the container dirs. When it
# is there, each container's writable layer is a subvolume of it, and the
# subvolume's qgroup limit is the container's disk limit (limit_disk.sh).
disk_pool_name=.disk

# The container's writable layer: the overlay's upper and work dirs live in
# writable_layer_dir, which is either
#   tmp                    a plain dir in the container dir (no pool; disk
#                          limits, if any, are per-uid quotas), or
#   <depot>/.disk/<id>     a btrfs subvolume in the depot's disk pool.
# setup.sh picks one (writable_layer_choose) and records it in etc/config;
# every later script reads it from there. set_overlay_dirs is the single
# place that names the dirs inside it.
writable_layer_dir=${writable_layer_dir:-tmp}
set_overlay_dirs() {
  overlay_upper_dir=$writable_layer_dir/rootfs
  overlay_work_dir=$writable_layer_dir/work
}
set_overlay_dirs
# Where the container's root filesystem is assembled.
rootfs_mount_dir=mnt

# Job directories (<container>/jobs: each job's script, output and status)
# live on a tmpfs at <depot>/.jobs when root setup.sh has mounted one there:
# creating and removing a job's files is several times cheaper than on a
# disk filesystem, and jobs only need to outlive the server, not a reboot
# (the containers do not outlive one either). <container>/jobs is then a
# symlink to <depot>/.jobs/<id>, recorded as jobs_dir in etc/config;
# without the tmpfs it is a plain dir and jobs_dir is empty.
jobs_pool_name=.jobs
jobs_dir=${jobs_dir:-}

# writable_layer_in_pool: true if the writable layer is a pool subvolume.
writable_layer_in_pool() {
  [[ $writable_layer_dir == /* ]]
}

# writable_layer_choose: for a new container (cwd = its dir, whose parent is
# the depot): the pool's subvolume if the pool is mounted, else tmp.
writable_layer_choose() {
  local depot
  # The depot's physical path (as /proc/self/mounts has it), without a
  # subshell.
  cd -P .. || return
  depot=$PWD
  cd "$OLDPWD" || return
  if is_mounted "$depot/$disk_pool_name" btrfs; then
    writable_layer_dir=$depot/$disk_pool_name/$id
  else
    writable_layer_dir=tmp
  fi
  set_overlay_dirs
  jobs_dir=
  if is_mounted "$depot/$jobs_pool_name" tmpfs; then
    jobs_dir=$depot/$jobs_pool_name/$id
  fi
}

# jobs_dir_prepare: the job directories' home (see jobs_pool_name).
jobs_dir_prepare() {
  if [[ -n $jobs_dir ]]; then
    mkdir -p "$jobs_dir"
    ln -sfn "$jobs_dir" jobs
  fi
}

# jobs_dir_remove: the tmpfs side of the job directories (a plain jobs/
# goes with the container dir). Idempotent.
jobs_dir_remove() {
  if [[ -n $jobs_dir ]]; then
    rm -rf --one-file-system -- "$jobs_dir"
  fi
}

# writable_layer_prepare: create the writable layer (the subvolume, then
# the upper and work dirs). Idempotent.
writable_layer_prepare() {
  if writable_layer_in_pool && [[ ! -d $writable_layer_dir ]]; then
    btrfs subvolume create "$writable_layer_dir" >/dev/null
  fi
  [[ -d $overlay_upper_dir && -d $overlay_work_dir ]] ||
    mkdir -p "$overlay_upper_dir" "$overlay_work_dir"
}

# writable_layer_remove: delete a pool subvolume and its qgroup (a plain tmp
# dir goes with the container dir). Idempotent. Run only once nothing in the
# container is left.
writable_layer_remove() {
  if writable_layer_in_pool; then
    pool_subvolume_delete "$writable_layer_dir"
  fi
}

# pool_subvolume_delete DIR: delete the pool subvolume DIR and its qgroup.
# Idempotent. Statuses are checked explicitly (callers may run it after
# "||", where set -e does not apply).
pool_subvolume_delete() {
  local subvol_id release major minor
  if [[ ! -d $1 ]]; then
    return 0
  fi
  # Kernels 6.8 and later drop the qgroup of a deleted subvolume by
  # themselves once its data is freed, and until then refuse to destroy it
  # (EBUSY). Older ones keep a stale qgroup unless it is destroyed here.
  read -r release </proc/sys/kernel/osrelease
  IFS=. read -r major minor _ <<<"$release"
  if ((major > 6 || (major == 6 && ${minor%%[!0-9]*} >= 8))); then
    btrfs subvolume delete "$1" >/dev/null || return
    return 0
  fi
  subvol_id=$(btrfs inspect-internal rootid "$1") || return
  btrfs subvolume delete "$1" >/dev/null || return
  btrfs qgroup destroy "0/$subvol_id" "${1%/*}" >/dev/null 2>&1 || true
}

# Mount the container's root filesystem (an overlay of rootfs_path) at mnt
# in the current mount namespace. Idempotent.
setup_fs() {
  local dir=$PWD p
  if is_mounted "$rootfs_mount_dir"; then
    return 0
  fi
  writable_layer_prepare
  local lower=$rootfs_path upper=$overlay_upper_dir work=$overlay_work_dir
  [[ $upper == /* ]] || upper=$dir/$upper
  [[ $work == /* ]] || work=$dir/$work
  for p in "$lower" "$upper" "$work"; do
    if [[ $p == *[,:]* ]]; then
      echo "overlay paths must not contain ',' or ':': $p" >&2
      return 1
    fi
  done
  [[ -d $rootfs_mount_dir ]] || mkdir -p "$rootfs_mount_dir"
  if ! mount -t overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" overlay "$rootfs_mount_dir"; then
    local fstype
    fstype=$(stat -f -c %T "$upper")
    if [[ $fstype == overlayfs || $fstype == overlay ]]; then
      echo "the container dir $dir is on overlayfs, which cannot hold an overlay upper layer;" \
        "put the depot on a regular filesystem" >&2
    fi
    return 1
  fi
}

teardown_fs() {
  if is_mounted "$rootfs_mount_dir"; then
    umount "$rootfs_mount_dir"
  fi
}

# --- network ------------------------------------------------------------------

# netmask_to_prefix 255.255.255.252: sets network_prefix=30.
netmask_to_prefix() {
  local a b c d octet bits=0
  IFS=. read -r a b c d <<<"$1"
  for octet in "$a" "$b" "$c" "$d"; do
    case $octet in
      255) bits=$((bits + 8)) ;;
      254) bits=$((bits + 7)) ;;
      252) bits=$((bits + 6)) ;;
      248) bits=$((bits + 5)) ;;
      240) bits=$((bits + 4)) ;;
      224) bits=$((bits + 3)) ;;
      192) bits=$((bits + 2)) ;;
      128) bits=$((bits + 1)) ;;
      0) ;;
      *)
        echo "invalid netmask: $1" >&2
        return 1
        ;;
    esac
  done
  # shellcheck disable=SC2034 # read by the scripts that source this file
  network_prefix=$bits
}

# --- teardown of kernel objects (destroy.sh, root clear.sh) -------------------

# Fill the array container_pid_list with the processes in the container's
# cgroups (host pids, possibly repeated).
read_container_pids() {
  local s f lines
  container_pid_list=()
  for s in "${cgroup_mounted[@]}"; do
    f=$cgroup_root/$s/warden/instance-$id/cgroup.procs
    if [[ -r $f ]]; then
      lines=()
      mapfile -t lines 2>/dev/null <"$f" || true
      container_pid_list+=("${lines[@]}")
    fi
  done
}

# SIGKILL everything in the container's cgroups until they are empty.
# Killing wshd (PID 1 of the container's pid namespace) takes every other
# process in the namespace with it.
kill_container_processes() {
  local tries=0
  while true; do
    read_container_pids
    if ((${#container_pid_list[@]} == 0)); then
      return 0
    fi
    kill -9 "${container_pid_list[@]}" 2>/dev/null || true
    tries=$((tries + 1))
    if ((tries > 1000)); then
      echo "processes still alive in the cgroups of $id after 10s: ${container_pid_list[*]}" >&2
      return 1
    fi
    sleep 0.01
  done
}

# Remove the instance cgroups (and anything nested in them).
remove_cgroups() {
  local s dir failed=0
  local -a dirs=()
  for s in "${cgroup_mounted[@]}"; do
    dir=$cgroup_root/$s/warden/instance-$id
    if [[ -d $dir ]]; then
      dirs+=("$dir")
    fi
  done
  if ((${#dirs[@]} == 0)); then
    return 0
  fi
  if ! rmdir -- "${dirs[@]}" 2>/dev/null; then
    # Nested groups first (a nested warden may have made some).
    find "${dirs[@]}" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
    rmdir -- "${dirs[@]}" 2>/dev/null || true
  fi
  for dir in "${dirs[@]}"; do
    if [[ -d $dir ]]; then
      echo "failed to remove $dir" >&2
      failed=1
    fi
  done
  return "$failed"
}

# Delete the host-side interfaces of the container if they still exist.
remove_interfaces() {
  local name cmds=
  for name in "w-$id-2" "w-$id-0"; do
    if [[ -e /sys/class/net/$name ]]; then
      cmds+="link del $name"$'\n'
    fi
  done
  if [[ -n $cmds ]]; then
    # -force: carry on if one of them vanished meanwhile (the veth goes
    # away by itself once the container's network namespace is gone).
    ip -force -batch - <<<"$cmds" 2>/dev/null || true
  fi
  for name in "w-$id-2" "w-$id-0"; do
    if [[ -e /sys/class/net/$name ]]; then
      echo "failed to delete interface $name" >&2
      return 1
    fi
  done
}

# Everything the kernel holds for container $id: processes, interfaces,
# cgroups. Idempotent; needs only $id. Returns 1 if anything is left. The
# statuses are checked explicitly: callers run it as "... || status=1",
# where set -e does not apply.
destroy_kernel_objects() {
  local ifaces status=0
  find_cgroup_subsystems
  read_container_pids
  if ((${#container_pid_list[@]} > 0)); then
    kill -9 "${container_pid_list[@]}" 2>/dev/null || true
  fi
  # Deleting interfaces waits for RCU grace periods; overlap that with
  # waiting for the processes to die.
  remove_interfaces &
  ifaces=$!
  kill_container_processes || status=1
  wait "$ifaces" || status=1
  # A group that still holds processes cannot go.
  if ((status == 0)); then
    remove_cgroups || status=1
  fi
  return "$status"
}
