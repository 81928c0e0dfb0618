#!/bin/bash
# Set or read the container's CPU weight: cpu.shares of its cgroup v1 cpu
# group <cgroup root>/cpu/warden/instance-<id>.
#
# Env: LIMIT_IN_SHARES  optional; the new weight. The kernel clamps it to
#                       2..262144 (so 1 reads back as 2). Empty or unset:
#                       only read.
# Stdout: cpu.shares read back.
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
cgroup_group cpu cpu.shares || fail "$cgroup_error"
shares_file=$REPLY/cpu.shares

if [[ -n $new ]]; then
  if [[ ! $new =~ ^[0-9]{1,20}$ ]]; then
    fail "LIMIT_IN_SHARES must be a number: '$new'"
  fi
  cgroup_write "$shares_file" "$new" || fail "$cgroup_error"
fi

read -r current <"$shares_file"
printf '%s\n' "$current"
