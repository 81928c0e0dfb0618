#!/usr/bin/env bash
# Destroy every container in a depot (in parallel), then remove what is left
# in the kernel of containers whose dir is gone: warden instance cgroups and
# w-<id>-* interfaces. Operator tool; the server does not use it.
#
#   clear.sh DEPOT_DIR
set -euo pipefail
shopt -s nullglob
[[ -n "${DEBUG:-}" ]] && set -x

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DEPOT_DIR" >&2
  exit 1
fi
depot=$(realpath -m -- "$1")
here=$(cd "$(dirname -- "$0")" && pwd)
# common.sh reads ./etc/config: make sure there is none.
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

declare -A leftover=()
for dir in "$cgroup_root"/*/warden/instance-*; do
  leftover[${dir##*/instance-}]=1
done
for dev in /sys/class/net/w-*-[0-9]; do
  name=${dev##*/}
  name=${name#w-}
  leftover[${name%-*}]=1
done

for id in "${!leftover[@]}"; do
  if [[ -n ${alive[$id]:-} ]]; then
    continue
  fi
  echo "Removing leftovers of $id"
  destroy_kernel_objects || status=1
done
exit "$status"
