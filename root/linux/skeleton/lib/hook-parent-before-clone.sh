#!/bin/bash
# wshd hook 1: on the host, in wshd's own private mount namespace, before
# the container's namespaces exist. Mounts the container's root filesystem
# at mnt; the clone copies the mount into the container's mount namespace,
# and it never appears in the host's.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
if [[ $0 == */* ]]; then cd "${0%/*}/.."; else cd ..; fi
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/fs.sh
source lib/fs.sh

require_params id rootfs_path
setup_fs
