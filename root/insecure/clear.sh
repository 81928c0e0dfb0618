#!/usr/bin/env bash
# Destroy every insecure container in a depot (an operator's tool; the server
# does not call it). Exits 1 if any destroy failed, after trying them all.
# Usage: clear.sh <depot_dir>
set -euo pipefail
shopt -s nullglob

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 <depot_dir>" >&2
  exit 1
fi
here="$(cd "$(dirname "$0")" && pwd)"

declare -A dirs=()
for dir in "$1"/*/; do
  dir=${dir%/}
  # As for the server's recovery, every dir but tmp and the dot entries
  # (.job-ids; the glob skips them) is a container, also one that a failed
  # destroy left half removed.
  [[ ${dir##*/} != tmp ]] || continue
  echo "Destroying $dir"
  "$here/destroy.sh" "$dir" &
  dirs[$!]=$dir
done

status=0
for pid in "${!dirs[@]}"; do
  if ! wait "$pid"; then
    echo "Failed destroying ${dirs[$pid]}" >&2
    status=1
  fi
done
exit "$status"
