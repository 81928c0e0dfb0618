#!/bin/bash
# Set or read the container's disk limits, and report its disk usage.
#
# Env (each optional; empty or unset = leave that limit as it is):
#   BLOCK_HARD  hard limit in 1 KiB blocks; 0 = unlimited
#   BLOCK_SOFT  soft limit in 1 KiB blocks; 0 = none
#   INODE_HARD  hard limit on files and dirs; 0 = unlimited
#   INODE_SOFT  soft limit on files and dirs; 0 = none
# With none of them set it only reads (the server's Info disk_stat).
# Stdout, one key=value a line, in this order:
#   block_soft, block_hard, inode_soft, inode_hard, bytes_used, inodes_used
#
# Two ways of enforcing, decided when the container was made (etc/config):
#
# * Disk pool: the writable layer is a btrfs subvolume of <depot>/.disk (see
#   root/linux/setup.sh). BLOCK_HARD becomes the limit of the subvolume's
#   qgroup on referenced bytes; writes beyond it fail with EDQUOT ("Disk
#   quota exceeded"). It counts everything the container writes, whoever
#   owns it (root's files too), plus btrfs metadata. btrfs has no soft limits
#   and cannot limit inodes: BLOCK_SOFT, INODE_SOFT and INODE_HARD are
#   recorded in etc/disk_limits and reported back, but NOT enforced.
#   bytes_used: the qgroup's referenced bytes (qgroups are brought up to date
#   at a transaction commit, so this syncs the pool first: ~3 ms when little
#   is dirty). inodes_used: files and dirs in the overlay's upper dir.
#
# * Per-uid quotas on the depot's filesystem (hosts with kernel quota
#   support; root setup.sh with DISK_QUOTA_ENABLED=true): setquota for the
#   container's uid, read back with warden's repquota helper. Only files
#   owned by that uid count. Extra env:
#     REPQUOTA                          path of src/repquota/repquota
#                                       (default: bin/repquota)
#     CONTAINER_DEPOT_MOUNT_POINT_PATH  mount point of the depot's
#                                       filesystem (default: from stat)
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/fs.sh
source lib/fs.sh

keys=(block_soft block_hard inode_soft inode_hard)
declare -A limit=([block_soft]=0 [block_hard]=0 [inode_soft]=0 [inode_hard]=0)
declare -A given=()

# The requested changes, checked before anything is touched.
for key in "${keys[@]}"; do
  name=${key^^}
  value=${!name:-}
  if [[ -z $value ]]; then
    continue
  fi
  # 15 digits: 1 KiB blocks as bytes must fit bash's 64-bit arithmetic.
  if [[ ! $value =~ ^[0-9]{1,15}$ ]]; then
    echo "limit_disk.sh: $name must be a number below 10^15: '$value'" >&2
    exit 1
  fi
  given[$key]=$((10#$value))
done

print_values() {
  local key
  for key in "${keys[@]}"; do
    printf '%s=%s\n' "$key" "${limit[$key]}"
  done
  printf 'bytes_used=%s\ninodes_used=%s\n' "$bytes_used" "$inodes_used"
}

# --- disk pool (btrfs qgroup) --------------------------------------------------
if writable_layer_in_pool; then
  subvol=$writable_layer_dir
  if [[ ! -d $subvol ]]; then
    echo "limit_disk.sh: the container's writable layer $subvol is missing" >&2
    exit 1
  fi
  limits_file=etc/disk_limits
  if [[ -f $limits_file ]]; then
    while IFS='=' read -r key value; do
      if [[ -n ${limit[$key]+set} && $value =~ ^[0-9]+$ ]]; then
        limit[$key]=$value
      fi
    done <"$limits_file"
  fi

  if [[ -n ${given[block_hard]+set} ]]; then
    if ((given[block_hard] == 0)); then
      btrfs qgroup limit none "$subvol"
    else
      btrfs qgroup limit "$((given[block_hard] * 1024))" "$subvol"
    fi
  fi
  if ((${#given[@]} > 0)); then
    for key in "${!given[@]}"; do
      limit[$key]=${given[$key]}
    done
    for key in "${keys[@]}"; do
      printf '%s=%s\n' "$key" "${limit[$key]}"
    done >"$limits_file.new"
    mv -f "$limits_file.new" "$limits_file"
  fi

  # One line per qgroup of the subvolume itself (-f: no parents):
  #   0/<subvolume id> <referenced> <exclusive> <max referenced|none> <path>
  qgroups=$(btrfs qgroup show --sync --raw -r -f "$subvol")
  bytes_used=
  while read -r qgroup rfer _ max_rfer _; do
    if [[ $qgroup == 0/* ]]; then
      bytes_used=$rfer
      if [[ $max_rfer == none ]]; then
        limit[block_hard]=0
      else
        limit[block_hard]=$(((max_rfer + 1023) / 1024))
      fi
    fi
  done <<<"$qgroups"
  if [[ -z $bytes_used ]]; then
    echo "limit_disk.sh: no qgroup for $subvol (are quotas enabled on the pool?)" >&2
    exit 1
  fi
  # Files and dirs in the upper layer, not counting the upper dir itself.
  count=$(du --inodes -s -x "$overlay_upper_dir")
  inodes_used=$((${count%%[[:space:]]*} - 1))
  print_values
  exit 0
fi

# --- per-uid quota (setquota / repquota) ----------------------------------------
require_params user_uid
mount_point=${CONTAINER_DEPOT_MOUNT_POINT_PATH:-}
if [[ -z $mount_point ]]; then
  mount_point=$(stat -c %m .)
fi
repquota=${REPQUOTA:-bin/repquota}
if [[ ! -x $repquota ]]; then
  echo "limit_disk.sh: no disk limits for this container: its writable layer is not" \
    "in a btrfs disk pool (root/linux/setup.sh makes one when quotas are off)," \
    "and per-uid quotas need REPQUOTA (warden's src/repquota/repquota; '$repquota'" \
    "is not there)" >&2
  exit 1
fi

# read_quota: fills limit[], bytes_used and inodes_used for user_uid.
read_quota() {
  local line uid bsoft bhard isoft ihard
  line=$("$repquota" "$mount_point" "$user_uid")
  read -r uid bytes_used bsoft bhard _ inodes_used isoft ihard _ <<<"$line"
  if [[ $uid != "$user_uid" ]]; then
    echo "limit_disk.sh: unexpected repquota output: '$line'" >&2
    exit 1
  fi
  limit[block_soft]=$bsoft
  limit[block_hard]=$bhard
  limit[inode_soft]=$isoft
  limit[inode_hard]=$ihard
}

read_quota
if ((${#given[@]} > 0)); then
  for key in "${!given[@]}"; do
    limit[$key]=${given[$key]}
  done
  setquota -u "$user_uid" "${limit[block_soft]}" "${limit[block_hard]}" \
    "${limit[inode_soft]}" "${limit[inode_hard]}" "$mount_point"
  read_quota
fi
print_values
