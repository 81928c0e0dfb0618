# shellcheck shell=bash
# shellcheck disable=SC2154 # $id and $rootfs_path are common.sh's
# The container's filesystems: is_mounted, the writable layer (the overlay's
# upper and work dirs, in tmp/ or in a subvolume of the depot's disk pool),
# the overlay mount at mnt/ and the job directories.
#
# Needs common.sh ($id, $rootfs_path). The root setup.sh and clear.sh source
# it for is_mounted and the pool names, with cwd /.

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
