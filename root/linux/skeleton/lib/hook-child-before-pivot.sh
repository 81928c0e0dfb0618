#!/usr/bin/env bash
# wshd hook 3: in the container's new namespaces, before pivot_root; host
# paths are still visible. (The server's bind mounts go in the after-pivot
# hook, where container paths resolve inside the container.)
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
if [[ $0 == */* ]]; then cd "${0%/*}/.."; else cd ..; fi
# shellcheck source=lib/common.sh
source lib/common.sh
