#!/bin/bash
# wshd hook 4: in the container, after pivot_root. Runs from the old root
# (/mnt/<container dir>/lib/...) but every program comes from the container's
# root filesystem. Mounts /proc, /dev/pts and /dev/shm (lib/container.fstab),
# sets the hostname and configures the container's network. The server
# appends the container's bind mounts at the end: the host's files are still
# reachable under /mnt here, until wshd detaches the old root.
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
if [[ $0 == */* ]]; then cd "${0%/*}/.."; else cd ..; fi
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/ifaces.sh
source lib/ifaces.sh

require_params id network_host_ip network_container_ip
netmask_to_prefix "$network_netmask"
iface_names

[[ -d /proc && -d /dev/pts && -d /dev/shm ]] || mkdir -p /proc /dev/pts /dev/shm
mount -a -T lib/container.fstab
if [[ ! -L /dev/ptmx ]]; then
  rm -f /dev/ptmx
  ln -s pts/ptmx /dev/ptmx
fi

printf '%s\n' "$id" >/proc/sys/kernel/hostname

ip -batch - <<EOF_IP
link set lo up
addr add $network_container_ip/$network_prefix broadcast + dev $container_iface
link set $container_iface mtu $container_iface_mtu up
route add default via $network_host_ip dev $container_iface
EOF_IP
