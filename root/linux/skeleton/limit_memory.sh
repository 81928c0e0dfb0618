#!/bin/bash
# Set or read the container's memory limit: v1 its memory group
# <cgroup root>/memory/warden/instance-<id>, v2 its group
# <base>/instance-<id>.
#
# Env: LIMIT_IN_BYTES  optional; the new limit in bytes (the kernel rounds
#                      it down to whole pages). Empty or unset: only read.
# Stdout: the limit read back (v1 memory.limit_in_bytes, v2 memory.max), in
# bytes; v2's "max" (no limit) as v1's number for it, 9223372036854771712.
# A refused write (e.g. a limit below what the container uses and cannot
# give back) prints "Failed setting memory limit: <reason>" on stderr and
# exits 1, leaving the old limits (memory and memory + swap) in place.
#
# memory.memsw.limit_in_bytes (memory + swap) is set to the same value when
# the kernel has it, so the container cannot swap past its limit. The kernel
# insists on limit <= memsw limit at every moment: raising writes memsw
# first, lowering writes the limit first.
#
# v2 has no memory + swap limit: memory.swap.max (swap alone) is set to 0,
# which keeps memory + swap at the limit as memsw does (runc's conversion:
# swap.max = memsw - memory). v2 takes any memory.max, and OOM-kills when the
# container cannot be brought under it; v1 refuses such a limit instead. To
# keep v1's answer, a limit below memory.current is applied only after the
# kernel reclaimed the difference (memory.reclaim, Linux 5.19+); otherwise
# the write fails with v1's reason, "Device or resource busy".
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/cgroup.sh
source lib/cgroup.sh

new=${LIMIT_IN_BYTES:-}
# The text clients see when a write fails ("Failed setting memory limit: ...");
# a read names the script instead.
fail() {
  if [[ -n $new ]]; then
    echo "Failed setting memory limit: $1" >&2
  else
    echo "limit_memory.sh: $1" >&2
  fi
  exit 1
}

require_params id

# greater A B: A > B for decimal numbers without leading zeros, of any
# length (limits near 2^64 do not fit bash's signed arithmetic).
greater() {
  if ((${#1} != ${#2})); then
    ((${#1} > ${#2}))
  else
    [[ $1 > $2 ]]
  fi
}

if [[ -n $new ]]; then
  if [[ ! $new =~ ^[0-9]{1,20}$ ]]; then
    fail "LIMIT_IN_BYTES must be a number of bytes: '$new'"
  fi
  while [[ $new == 0?* ]]; do
    new=${new#0}
  done
fi

# v1_unlimited: v1's memory.limit_in_bytes when nothing is set
# (PAGE_COUNTER_MAX pages of 4 KiB), what v2's "max" reads back as.
v1_unlimited=9223372036854771712

if [[ $cgroup_layout == v2 ]]; then
  cgroup_group memory memory.max || fail "$cgroup_error"
  dir=$REPLY
  max_file=$dir/memory.max
  swap_file=$dir/memory.swap.max
  if [[ -n $new ]]; then
    # Bytes beyond what the kernel can count mean no limit, as on v1.
    if greater "$new" "$v1_unlimited"; then
      new=max
    fi
    read -r usage <"$dir/memory.current"
    if [[ $new != max ]] && greater "$usage" "$new"; then
      if [[ ! -f $dir/memory.reclaim ]] ||
        ! cgroup_write "$dir/memory.reclaim" "$((usage - new))"; then
        # v1's words, which clients and tests match.
        fail "Device or resource busy"
      fi
    fi
    old_swap=
    if [[ -f $swap_file ]]; then
      read -r old_swap <"$swap_file"
      if [[ $old_swap != 0 ]]; then
        cgroup_write "$swap_file" 0 || fail "$cgroup_error"
      fi
    fi
    if ! cgroup_write "$max_file" "$new"; then
      # Put the old swap limit back, so that the request changes nothing.
      error=$cgroup_error
      if [[ -n $old_swap && $old_swap != 0 ]]; then
        cgroup_write "$swap_file" "$old_swap" || true
      fi
      fail "$error"
    fi
  fi
  read -r current <"$max_file"
  if [[ $current == max ]] || greater "$current" "$v1_unlimited"; then
    current=$v1_unlimited
  fi
  printf '%s\n' "$current"
  exit 0
fi

cgroup_group memory memory.limit_in_bytes || fail "$cgroup_error"
dir=$REPLY
limit_file=$dir/memory.limit_in_bytes
memsw_file=$dir/memory.memsw.limit_in_bytes

if [[ -n $new ]]; then
  read -r old <"$limit_file"
  if [[ ! -f $memsw_file ]]; then
    cgroup_write "$limit_file" "$new" || fail "$cgroup_error"
  elif greater "$new" "$old"; then
    read -r old_memsw <"$memsw_file"
    cgroup_write "$memsw_file" "$new" || fail "$cgroup_error"
    if ! cgroup_write "$limit_file" "$new"; then
      # Put the old memory + swap limit back, so that the request changes
      # nothing.
      error=$cgroup_error
      cgroup_write "$memsw_file" "$old_memsw" || true
      fail "$error"
    fi
  else
    cgroup_write "$limit_file" "$new" || fail "$cgroup_error"
    if ! cgroup_write "$memsw_file" "$new"; then
      # Memory + swap in use is above the new limit: put the old limit
      # back, so that the request changes nothing.
      error=$cgroup_error
      cgroup_write "$limit_file" "$old" || true
      fail "$error"
    fi
  fi
fi

read -r current <"$limit_file"
printf '%s\n' "$current"
