#!/usr/bin/env bash
# Start the container: run wshd, which sets up the namespaces, cgroups and
# interfaces through the hooks in lib/ and returns once the container's init
# serves run/wshd.sock. Exit status: wshd's.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh

if [[ -f run/wshd.pid ]]; then
  echo "wshd is already running..." >&2
  exit 1
fi
require_params id
[[ -d run ]] || mkdir run

# --- network filter rules (iptables): net.sh is added by a later step --------
if [[ -x ./net.sh ]]; then
  ./net.sh setup
fi

status=0
./bin/wshd --run run --lib lib --root "$rootfs_mount_dir" --title "wshd: $id" \
  </dev/null >run/wshd.out.log 2>run/wshd.err.log || status=$?
if ((status != 0)); then
  echo "start.sh: wshd failed with status $status:" >&2
  cat run/wshd.err.log >&2 || true
fi
exit "$status"
