#!/usr/bin/env bash
# Destroy every insecure container in a depot (an operator's tool; the server
# does not call it).
# Usage: clear.sh <depot_dir>
set -euo pipefail
shopt -s nullglob

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 <depot_dir>" >&2
  exit 1
fi
here="$(cd "$(dirname "$0")" && pwd)"

for dir in "$1"/*/; do
  dir=${dir%/}
  echo "Destroying $dir"
  "$here/destroy.sh" "$dir" &
done
wait
