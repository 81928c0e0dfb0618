#!/bin/bash
# Set or read the container's memory limit (cgroup v1 memory group
# <cgroup root>/memory/warden/instance-<id>).
#
# Env: LIMIT_IN_BYTES  optional; the new limit in bytes (the kernel rounds
#                      it down to whole pages). Empty or unset: only read.
# Stdout: the limit read back from memory.limit_in_bytes.
# A refused write (e.g. a limit below what the container uses and cannot
# give back) prints "Failed setting memory limit: <reason>" on stderr and
# exits 1, leaving the old limits (memory and memory + swap) in place.
#
# memory.memsw.limit_in_bytes (memory + swap) is set to the same value when
# the kernel has it, so the container cannot swap past its limit. The kernel
# insists on limit <= memsw limit at every moment: raising writes memsw
# first, lowering writes the limit first.
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
cgroup_group memory memory.limit_in_bytes || fail "$cgroup_error"
dir=$REPLY
limit_file=$dir/memory.limit_in_bytes
memsw_file=$dir/memory.memsw.limit_in_bytes

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
