#!/usr/bin/env bash
# Create an insecure container directory from the skeleton.
# Usage: create.sh <container_dir>
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 <container_dir>" >&2
  exit 1
fi
target=$1
skeleton="$(cd "$(dirname "$0")" && pwd)/skeleton"

if [[ -e "$target" ]]; then
  echo "\"$target\" already exists, aborting..." >&2
  exit 1
fi

mkdir -p "$(dirname "$target")"
cp -a "$skeleton" "$target"
"$target/setup.sh"
echo "$target"
