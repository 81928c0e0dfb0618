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
# shellcheck source=lib/cgroup.sh
source lib/cgroup.sh
# shellcheck source=lib/ifaces.sh
source lib/ifaces.sh

require_params id PID network_host_ip network_container_ip
netmask_to_prefix "$network_netmask"
iface_names

# --- interfaces -----------------------------------------------------------------
# host_iface (host_ip/prefix) <-> container_iface (moved into the container's
# netns, configured by hook-child-after-pivot.sh); ifb_iface is an ifb for
# shaping the container's egress (net_rate.sh). In the background: the
# interfaces do not depend on the cgroups below, and both wait on the
# kernel (the first move into a cgroup waits for an RCU grace period).
ip -batch - <<EOF_IP &
link add name $host_iface mtu $container_iface_mtu type veth peer name $container_iface mtu $container_iface_mtu netns $PID
addr add $network_host_ip/$network_prefix broadcast + dev $host_iface
link set $host_iface up
link add name $ifb_iface mtu $container_iface_mtu type ifb
link set $ifb_iface up
EOF_IP
ip_pid=$!
# Whatever fails below, never leave ip running behind this hook.
trap 'wait' EXIT

# --- cgroups (lib/cgroup.sh): v1 one group per mounted subsystem, v2 one ---------
if ! cgroup_check_ready; then
  echo "$cgroup_error" >&2
  exit 1
fi
find_cgroup_subsystems
# The devices the container may open: null zero random urandom tty ptmx
# pts/* fuse (all of them with allow_nested_warden=true). v1 writes them to
# the devices group; v2 attaches bin/devices-bpf's program with them.
cgroup_create_instance "$PID" 'c 1:3 rw' 'c 1:5 rw' 'c 1:8 rw' 'c 1:9 rw' \
  'c 5:0 rw' 'c 5:2 rw' 'c 136:* rw' 'c 10:229 rw'

wait "$ip_pid"

echo "$PID" >run/wshd.pid
