#!/bin/bash
# Tear the container down: kill wshd (PID 1 of the container's pid namespace,
# so everything in it dies), wait for the cgroups to empty, delete the
# interfaces and the cgroups, and delete the writable layer's subvolume when
# it is in the depot's disk pool. Idempotent, and it works on a half-created
# container: the kernel objects are found by id, with or without a pid file.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/cgroup.sh
source lib/cgroup.sh
# shellcheck source=lib/ifaces.sh
source lib/ifaces.sh
# shellcheck source=lib/processes.sh
source lib/processes.sh
# shellcheck source=lib/fs.sh
source lib/fs.sh

if [[ -z $id ]]; then
  # setup.sh writes etc/config before anything touches the kernel, so a
  # container without an id has nothing there.
  rm -f run/wshd.pid
  exit 0
fi

# The iptables teardown and the rest are independent, and both wait on the
# kernel (RCU grace periods), so they run at the same time. A failure of
# the iptables teardown must not keep the rest from being torn down.
net_pid=
if [[ -x ./net.sh ]]; then
  ./net.sh teardown &
  net_pid=$!
fi

status=0
if destroy_kernel_objects; then
  rm -f run/wshd.pid
  # Nothing of the container runs any more: its writable layer can go (a
  # subvolume of the disk pool; a plain tmp/ goes with the container dir).
  writable_layer_remove || status=$?
  jobs_dir_remove || status=$?
else
  status=1
fi
net_status=0
if [[ -n $net_pid ]]; then
  wait "$net_pid" || net_status=$?
fi
if ((status != 0)); then
  exit "$status"
fi
exit "$net_status"
