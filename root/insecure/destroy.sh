#!/usr/bin/env bash
# Stop every job of an insecure container and remove its directory.
# Usage: destroy.sh <container_dir>. A missing directory is not an error.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
  echo "usage: $0 <container_dir>" >&2
  exit 1
fi
target=$1

[[ -d "$target" ]] || exit 0
if [[ -x "$target/stop.sh" ]]; then
  "$target/stop.sh" -w 0 || true
fi
rm -rf "$target"
