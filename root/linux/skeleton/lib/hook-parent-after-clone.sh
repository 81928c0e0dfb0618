#!/bin/bash
# wshd hook 2: on the host, after the clone. Env PID = the container init's
# pid (host view). Puts it into its cgroups, creates the network interfaces
# (host end configured here, container end moved into its namespace) and
# writes run/wshd.pid.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
if [[ $0 == */* ]]; then cd "${0%/*}/.."; else cd ..; fi
# shellcheck source=lib/common.sh
source lib/common.sh

require_params id PID network_host_ip network_container_ip
netmask_to_prefix "$network_netmask"

# --- interfaces -----------------------------------------------------------------
# w-<id>-0 (host, host_ip/prefix) <-> w-<id>-1 (moved into the container's
# netns, configured by hook-child-after-pivot.sh); w-<id>-2 is an ifb for
# shaping the container's egress (net_rate.sh). In the background: the
# interfaces do not depend on the cgroups below, and both wait on the
# kernel (the first move into a cgroup waits for an RCU grace period).
ip -batch - <<EOF_IP &
link add name w-$id-0 mtu $container_iface_mtu type veth peer name w-$id-1 mtu $container_iface_mtu netns $PID
addr add $network_host_ip/$network_prefix broadcast + dev w-$id-0
link set w-$id-0 up
link add name w-$id-2 mtu $container_iface_mtu type ifb
link set w-$id-2 up
EOF_IP
ip_pid=$!
# Whatever fails below, never leave ip running behind this hook.
trap 'wait' EXIT

# --- cgroups: <subsystem>/warden/instance-<id> --------------------------------
for s in "${cgroup_required_subsystems[@]}"; do
  if [[ ! -d $cgroup_root/$s ]]; then
    echo "cgroup subsystem $s is not mounted at $cgroup_root/$s" >&2
    exit 1
  fi
done
find_cgroup_subsystems
dirs=()
for s in "${cgroup_mounted[@]}"; do
  dirs+=("$cgroup_root/$s/warden/instance-$id")
done
mkdir -p "${dirs[@]}"

for s in "${cgroup_mounted[@]}"; do
  dir=$cgroup_root/$s/warden/instance-$id
  case $s in
    cpuset)
      cgroup_fill_cpuset "$cgroup_root/$s" "$cgroup_root/$s/warden"
      cgroup_fill_cpuset "$cgroup_root/$s/warden" "$dir"
      ;;
    devices)
      if [[ $allow_nested_warden == true ]]; then
        echo a >"$dir/devices.allow"
      else
        echo a >"$dir/devices.deny"
        # One rule per write: null zero random urandom tty ptmx pts/* fuse.
        for rule in 'c 1:3 rw' 'c 1:5 rw' 'c 1:8 rw' 'c 1:9 rw' 'c 5:0 rw' \
          'c 5:2 rw' 'c 136:* rw' 'c 10:229 rw'; do
          echo "$rule" >"$dir/devices.allow"
        done
      fi
      ;;
  esac
  echo "$PID" >"$dir/cgroup.procs"
done

wait "$ip_pid"

echo "$PID" >run/wshd.pid
