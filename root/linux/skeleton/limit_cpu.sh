#!/bin/bash
# Set or read the container's CPU weight, in cgroup v1's cpu.shares units
# whatever the layout.
#   v1: cpu.shares of its cpu group <cgroup root>/cpu/warden/instance-<id>.
#   v2: cpu.weight of its group <base>/instance-<id>, converted from shares
#       as runc does: weight = 1 + ((shares - 2) * 9999) / 262142 (so 2..262144
#       maps onto 1..10000). v2 cannot give the shares back from the weight
#       (the mapping is not one to one), so the shares last set are kept in
#       etc/cpu_shares; 1024 (v1's default) when never set.
#
# Env: LIMIT_IN_SHARES  optional; the new weight. Clamped to 2..262144, as
#                       v1's kernel does (so 1 reads back as 2). Empty or
#                       unset: only read.
# Stdout: the shares read back.
# A refused write prints "Failed setting cpu shares: <reason>" on stderr
# and exits 1.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/cgroup.sh
source lib/cgroup.sh

new=${LIMIT_IN_SHARES:-}
# The text clients see when a write fails ("Failed setting cpu shares: ...");
# a read names the script instead.
fail() {
  if [[ -n $new ]]; then
    echo "Failed setting cpu shares: $1" >&2
  else
    echo "limit_cpu.sh: $1" >&2
  fi
  exit 1
}

require_params id
if [[ -n $new && ! $new =~ ^[0-9]{1,20}$ ]]; then
  fail "LIMIT_IN_SHARES must be a number: '$new'"
fi

if [[ $cgroup_layout != v2 ]]; then
  cgroup_group cpu cpu.shares || fail "$cgroup_error"
  shares_file=$REPLY/cpu.shares
  if [[ -n $new ]]; then
    cgroup_write "$shares_file" "$new" || fail "$cgroup_error"
  fi
  read -r current <"$shares_file"
  printf '%s\n' "$current"
  exit 0
fi

cgroup_group cpu cpu.weight || fail "$cgroup_error"
weight_file=$REPLY/cpu.weight
saved=etc/cpu_shares
if [[ -n $new ]]; then
  while [[ $new == 0?* ]]; do
    new=${new#0}
  done
  # Up to 20 digits would overflow bash's arithmetic: clamp by length first.
  if ((${#new} > 6 || new > 262144)); then
    shares=262144
  elif ((new < 2)); then
    shares=2
  else
    shares=$new
  fi
  cgroup_write "$weight_file" "$((1 + ((shares - 2) * 9999) / 262142))" || fail "$cgroup_error"
  printf '%s\n' "$shares" >"$saved.new"
  mv -f "$saved.new" "$saved"
  printf '%s\n' "$shares"
  exit 0
fi
current=1024
if [[ -f $saved ]]; then
  read -r current <"$saved"
fi
printf '%s\n' "$current"
