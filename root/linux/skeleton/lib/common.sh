# shellcheck shell=bash
# The basics every container script and hook sources first: the container's
# parameters and require_params. The other libs (each sourced after this one
# by the scripts that need it):
#   cgroup.sh     the container's cgroups: the only file that knows their paths
#   fs.sh         mounts, the writable layer (overlay, disk pool subvolume),
#                 the job directories
#   ifaces.sh     the container's network interfaces and its netmask
#   processes.sh  finding and killing the container's processes, and
#                 destroy_kernel_objects (needs cgroup.sh and ifaces.sh)
#   net-common.sh iptables helpers (also sourced alone by root net.sh)
#   dev.sh        the container's /dev, passwd/group lookups
#
# Sourced with the container dir as cwd (every script cd's there first).
# Loads etc/config (written by setup.sh) when the cwd is a container dir;
# values already in the environment are overridden by it. (The root scripts
# source this from /, where a host /etc/config must never be read.)
#
# Results in REPLY: a function that computes one value sets the global REPLY
# (or an array named in its comment, e.g. REPLY_RULES) instead of printing
# it, so callers write "f ARG; x=$REPLY" rather than "x=$(f ARG)", which
# forks a subshell: about 1 ms each, on the Create/Destroy path. Read REPLY
# right after the call; the next such call overwrites it.

if [[ -f etc/config && -f lib/common.sh ]]; then
  # shellcheck source=/dev/null
  source etc/config
fi

# --- parameters ---------------------------------------------------------------
# From etc/config, else from the environment (the server's names). Empty
# means "not given"; require_params makes a script insist on some.
id=${id:-}                                   # 11-char container id
network_host_ip=${network_host_ip:-}         # host end of the /30
network_container_ip=${network_container_ip:-}
network_netmask=${network_netmask:-255.255.255.252}
user_uid=${user_uid:-}                       # uid and gid of vcap
rootfs_path=${rootfs_path:-}                 # read-only lower layer
allow_nested_warden=${allow_nested_warden:-false}
container_iface_mtu=${container_iface_mtu:-1500}
dns_servers=${dns_servers:-}                 # newline-separated, may be empty
container_pids_limit=${container_pids_limit:-} # pids.max; empty or 0: no limit
# writable_layer_dir and jobs_dir: see fs.sh.

# require_params NAME... : fail with a message naming the first empty one.
require_params() {
  local name
  for name in "$@"; do
    if [[ -z ${!name:-} ]]; then
      echo "$0: parameter '$name' is not set (etc/config or environment)" >&2
      return 1
    fi
  done
}
