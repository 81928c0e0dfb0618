#!/bin/bash
# Create a container dir from the skeleton and prepare it (skeleton
# setup.sh). Prints the dir. With START=1 it then starts the container too
# (skeleton start.sh), and exits with start.sh's status.
#
#   create.sh CONTAINER_DIR
#
# Env: as skeleton/setup.sh (id, network_*, user_uid, rootfs_path, ...);
# START=1 to start the container as well.
# On failure the half-made dir is left for destroy.sh.
#
# setup.sh and start.sh run in this bash process: they are sourced, not
# started (each bash start-up costs about 2 ms on the Create path). Each
# of them cds to the container dir itself, and runs as well on its own.
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
start=${START:-}

[[ -d ${target%/*} ]] || mkdir -p "${target%/*}"
cp -a "$here/skeleton" "$target"
# No arguments for setup.sh ("--mounted" selects its slow path).
set --
# shellcheck source=skeleton/setup.sh
source "$target/setup.sh"
printf '%s\n' "$target"
if [[ $start == 1 ]]; then
  # shellcheck source=skeleton/start.sh
  source "$target/start.sh"
fi
