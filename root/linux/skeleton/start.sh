#!/bin/bash
# Start the container: run wshd, which sets up the namespaces, cgroups and
# interfaces through the hooks in lib/ and returns once the container's init
# serves run/wshd.sock, and create the container's iptables chains
# (net.sh setup). Exit status: wshd's, or 1 when net.sh setup failed (the
# container is running then; the server's cleanup destroys it).
# create.sh sources this file when asked to start (START=1).
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ ${BASH_SOURCE[0]} != */* ]] || cd "${BASH_SOURCE[0]%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/fs.sh
source lib/fs.sh

if [[ -f run/wshd.pid ]]; then
  echo "wshd is already running..." >&2
  exit 1
fi
require_params id
[[ -d run ]] || mkdir run

# The container's iptables chains (net.sh setup) and wshd do not depend on
# each other, and both wait on the kernel (RCU grace periods), so they run
# at the same time. net.sh is added by a later step of the build.
net_pid=
if [[ -x ./net.sh ]]; then
  ./net.sh setup &
  net_pid=$!
fi

status=0
./bin/wshd --run run --lib lib --root "$rootfs_mount_dir" --title "wshd: $id" \
  </dev/null >run/wshd.out.log 2>run/wshd.err.log || status=$?
if ((status != 0)); then
  echo "start.sh: wshd failed with status $status:" >&2
  cat run/wshd.err.log >&2 || true
fi
if [[ -n $net_pid ]] && ! wait "$net_pid"; then
  echo "start.sh: net.sh setup failed" >&2
  status=1
fi
exit "$status"
