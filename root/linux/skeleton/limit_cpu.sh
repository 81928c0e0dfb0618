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

fail() {
  echo "Failed setting cpu shares: $1" >&2
  exit 1
}

require_params id
cgroup_dir cpu
shares_file=$REPLY/cpu.shares
new=${LIMIT_IN_SHARES:-}

if [[ ! -f $shares_file ]]; then
  if [[ -n $new ]]; then
    fail "no cpu cgroup $REPLY (is the container running?)"
  fi
  echo "limit_cpu.sh: no cpu cgroup $REPLY (is the container running?)" >&2
  exit 1
fi

if [[ -n $new ]]; then
  if [[ ! $new =~ ^[0-9]{1,20}$ ]]; then
    fail "LIMIT_IN_SHARES must be a number: '$new'"
  fi
  cgroup_write "$shares_file" "$new" || fail "$cgroup_error"
fi

read -r current <"$shares_file"
printf '%s\n' "$current"
