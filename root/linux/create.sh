#!/usr/bin/env bash
# Create a container dir from the skeleton and prepare it (skeleton
# setup.sh, run in a private mount namespace). Prints the dir.
#
#   create.sh CONTAINER_DIR
#
# Env: as skeleton/setup.sh (id, network_*, user_uid, rootfs_path, ...).
# On failure the half-made dir is left for destroy.sh.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x

if [[ $# -ne 1 ]]; then
  echo "usage: $0 CONTAINER_DIR" >&2
  exit 1
fi
target=${1%/}
[[ $target == /* ]] || target=$PWD/$target
if [[ -e $target ]]; then
  echo "\"$target\" already exists, aborting..." >&2
  exit 1
fi
here=.
[[ $0 != */* ]] || here=${0%/*}

[[ -d ${target%/*} ]] || mkdir -p "${target%/*}"
cp -a "$here/skeleton" "$target"
# util-linux unshare makes the new mount namespace private (recursively).
unshare --mount --propagation private "$target/setup.sh"
printf '%s\n' "$target"
