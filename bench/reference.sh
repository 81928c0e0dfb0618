#!/usr/bin/env bash
# The lifecycle benchmark's reference: the kernel work of one warden container
# (Linux backend, full networking) done by a plain shell script, batched the
# cheapest way: what Create + Destroy should cost if the server added nothing.
#
#   reference.sh setup          the parent cgroups and the global chains
#   reference.sh create ID      one container (ID: 1-10 chars of [a-z0-9])
#   reference.sh destroy ID     tear it all down again
#   reference.sh teardown       remove everything the reference made, leftovers too
#
# Env: WB_DIR     state dir (required): WB_DIR/<id>/{upper,work,mnt}
#      WB_ROOTFS  the read-only lower layer (default /var/lib/warden/rootfs)
#      WB_HOST_IP, WB_CONTAINER_IP  the /30's two addresses (create)
#
# Per container, as warden does it:
#  - cgroups cpu cpuacct cpuset memory devices under <subsystem>/warden-bench/<id>
#    (cpuset filled from the parent, the devices whitelist of warden's hook);
#  - one process (`unshare --fork --pid --net --uts --ipc --mount`, `sleep infinity`
#    as its PID 1) placed in the cgroups before it starts, holding an overlay mount
#    of the rootfs in its private mount namespace, and its hostname set;
#  - a veth pair (host end addressed and up, the other end moved into the new
#    network namespace and configured there: lo, address, default route) and an
#    ifb, with one `ip -batch` on each side;
#  - the per-container iptables chains of skeleton/net.sh with one
#    `iptables-restore --noflush`.
# Names: interfaces wb-<id>-{0,1,2}; chains wbench-*, which are not jumped to
# from any built-in chain, so no packet ever sees them. Not warden-*: warden's
# `net.sh teardown` without a pool removes every warden-* chain, and a test run
# at the same time must not pull these away mid-benchmark (nor these its).
set -euo pipefail

cgroup_root=/sys/fs/cgroup
subsystems=(cpu cpuacct cpuset memory devices)
parent=warden-bench
forward_chain=wbench-forward
default_chain=wbench-default
prerouting_chain=wbench-prerouting
mtu=1500

fail() {
  echo "reference.sh: $*" >&2
  exit 1
}

[[ -n ${WB_DIR:-} ]] || fail "WB_DIR is not set"

check_id() {
  [[ $1 =~ ^[a-z0-9]{1,10}$ ]] || fail "bad id '$1' (1-10 characters of [a-z0-9])"
}

setup() {
  local s f value
  mkdir -p "$WB_DIR"
  for s in "${subsystems[@]}"; do
    [[ -d $cgroup_root/$s/$parent ]] || mkdir "$cgroup_root/$s/$parent"
  done
  for f in cpuset.cpus cpuset.mems; do
    read -r value <"$cgroup_root/cpuset/$f"
    echo "$value" >"$cgroup_root/cpuset/$parent/$f"
  done
  # ":chain" creates the chain, or empties it when it is there.
  iptables-restore --noflush -w <<EOF
*filter
:$default_chain - [0:0]
:$forward_chain - [0:0]
-A $default_chain -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A $default_chain -j REJECT --reject-with icmp-port-unreachable
-A $forward_chain -j DROP
COMMIT
*nat
:$prerouting_chain - [0:0]
COMMIT
EOF
}

create() {
  local id=$1
  check_id "$id"
  local dir=$WB_DIR/$id rootfs=${WB_ROOTFS:-/var/lib/warden/rootfs}
  local host_ip=${WB_HOST_IP:?WB_HOST_IP is not set} container_ip=${WB_CONTAINER_IP:?WB_CONTAINER_IP is not set}
  local s group value line pid
  local -a groups=()
  mkdir -p "$dir/upper" "$dir/work" "$dir/mnt"

  # --- cgroups ---------------------------------------------------------------
  for s in "${subsystems[@]}"; do
    groups+=("$cgroup_root/$s/$parent/$id")
  done
  mkdir "${groups[@]}"
  group=$cgroup_root/cpuset/$parent/$id
  read -r value <"$cgroup_root/cpuset/$parent/cpuset.cpus"
  echo "$value" >"$group/cpuset.cpus"
  read -r value <"$cgroup_root/cpuset/$parent/cpuset.mems"
  echo "$value" >"$group/cpuset.mems"
  group=$cgroup_root/devices/$parent/$id
  echo a >"$group/devices.deny"
  for value in 'c 1:3 rw' 'c 1:5 rw' 'c 1:8 rw' 'c 1:9 rw' 'c 5:0 rw' \
    'c 5:2 rw' 'c 136:* rw' 'c 10:229 rw'; do
    echo "$value" >"$group/devices.allow"
  done

  # --- the process: into the cgroups first, then new namespaces ---------------
  # The subshell joins the cgroups and execs unshare, so unshare and its child
  # (PID 1 of the new pid namespace) start in them. unshare itself enters the
  # new net/uts/ipc/mount namespaces, so its pid names the netns below.
  # --kill-child: killing unshare kills the namespace's PID 1 too.
  coproc REF {
    for group in "${groups[@]}"; do
      echo "$BASHPID" >"$group/cgroup.procs"
    done
    # shellcheck disable=SC2016 # $1.. are the inner shell's
    exec unshare --fork --pid --net --uts --ipc --mount --propagation private --kill-child -- \
      /bin/sh -c 'mount -t overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" overlay "$4" || exit 1
        echo "$5" >/proc/sys/kernel/hostname
        echo ready
        exec sleep infinity' sh "$rootfs" "$dir/upper" "$dir/work" "$dir/mnt" "$id" 2>>"$dir/stderr"
  }
  pid=$REF_PID
  echo "$pid" >"$dir/pid"
  line=
  read -r -t 10 -u "${REF[0]}" line || true
  [[ $line == ready ]] || fail "the container process did not start: $(cat "$dir/stderr" 2>/dev/null)"

  # --- interfaces --------------------------------------------------------------
  ip -batch - <<EOF
link add name wb-$id-0 mtu $mtu type veth peer name wb-$id-1 mtu $mtu netns $pid
addr add $host_ip/30 broadcast + dev wb-$id-0
link set wb-$id-0 up
link add name wb-$id-2 mtu $mtu type ifb
link set wb-$id-2 up
EOF
  nsenter -t "$pid" -n ip -batch - <<EOF
link set lo up
addr add $container_ip/30 broadcast + dev wb-$id-1
link set wb-$id-1 up
route add default via $host_ip dev wb-$id-1
EOF

  # --- iptables: skeleton/net.sh setup's transaction ----------------------------
  local chain=wbench-i-$id
  iptables-restore --noflush -w <<EOF
*filter
-N $chain
-N $chain-log
-A $chain-log -m conntrack --ctstate NEW -j LOG --log-prefix "$chain "
-A $chain-log -j ACCEPT
-A $chain -g $default_chain
-I $forward_chain 1 -i wb-$id-0 -g $chain
COMMIT
*nat
-N $chain
-A $prerouting_chain -j $chain
COMMIT
EOF
}

# group_pids ID: REPLY_PIDS = the processes in the container's cpu cgroup.
group_pids() {
  REPLY_PIDS=()
  local f=$cgroup_root/cpu/$parent/$1/cgroup.procs
  if [[ -r $f ]]; then
    mapfile -t REPLY_PIDS <"$f" 2>/dev/null || true
  fi
}

# destroy ID [lenient]: as warden's destroy (skeleton net.sh teardown, then
# destroy_kernel_objects): iptables in one transaction; kill the processes and,
# meanwhile, delete the interfaces; wait for the cgroups to empty; remove them
# and the dir. lenient: for leftovers, carry on past anything already gone.
destroy() {
  local id=$1 lenient=${2:-}
  check_id "$id"
  local dir=$WB_DIR/$id chain=wbench-i-$id s tries=0 ifaces
  if ! iptables-restore --noflush -w 2>"$WB_DIR/.iptables.err" <<EOF; then
*filter
-D $forward_chain -i wb-$id-0 -g $chain
-F $chain
-F $chain-log
-X $chain
-X $chain-log
COMMIT
*nat
-D $prerouting_chain -j $chain
-F $chain
-X $chain
COMMIT
EOF
    [[ -n $lenient ]] || fail "iptables-restore failed: $(<"$WB_DIR/.iptables.err")"
    purge_chains "^$chain(-log)?\$"
  fi

  group_pids "$id"
  if ((${#REPLY_PIDS[@]} > 0)); then
    kill -9 "${REPLY_PIDS[@]}" 2>/dev/null || true
  fi
  ip -force -batch - <<EOF 2>/dev/null &
link del wb-$id-2
link del wb-$id-0
EOF
  ifaces=$!
  while true; do
    group_pids "$id"
    ((${#REPLY_PIDS[@]} == 0)) && break
    kill -9 "${REPLY_PIDS[@]}" 2>/dev/null || true
    tries=$((tries + 1))
    ((tries < 1000)) || fail "processes of $id still alive after 10s: ${REPLY_PIDS[*]}"
    sleep 0.01
  done
  # A veth may go by itself with its network namespace: check, not the status.
  wait "$ifaces" || true
  if [[ -e /sys/class/net/wb-$id-0 || -e /sys/class/net/wb-$id-2 ]]; then
    [[ -n $lenient ]] || fail "deleting the interfaces of $id failed"
  fi
  local -a groups=()
  for s in "${subsystems[@]}"; do
    if [[ -d $cgroup_root/$s/$parent/$id ]]; then
      groups+=("$cgroup_root/$s/$parent/$id")
    fi
  done
  if ((${#groups[@]} > 0)); then
    rmdir -- "${groups[@]}"
  fi
  rm -rf --one-file-system -- "$dir"
}

# purge_chains REGEX: remove the chains matching REGEX and every rule jumping
# or going to one, in both tables (one iptables-save, one iptables-restore).
purge_chains() {
  local re=$1 line table='' chain target
  local -A doomed=()
  local -a deletes_filter=() deletes_nat=() chains_filter=() chains_nat=()
  local saved
  saved=$(iptables-save -t filter; iptables-save -t nat)
  while IFS= read -r line; do
    case $line in
      \**) table=${line#\*} ;;
      :*)
        chain=${line#:}
        chain=${chain%% *}
        if [[ $chain =~ $re ]]; then
          doomed[$table:$chain]=1
          if [[ $table == filter ]]; then chains_filter+=("$chain"); else chains_nat+=("$chain"); fi
        fi
        ;;
    esac
  done <<<"$saved"
  while IFS= read -r line; do
    case $line in
      \**) table=${line#\*} ;;
      -A\ *)
        chain=${line#-A }
        chain=${chain%% *}
        [[ -z ${doomed[$table:$chain]:-} ]] || continue
        target=
        if [[ $line =~ \ -[jg]\ ([^ ]+) ]]; then target=${BASH_REMATCH[1]}; fi
        if [[ -n $target && -n ${doomed[$table:$target]:-} ]]; then
          if [[ $table == filter ]]; then deletes_filter+=("-D${line#-A}"); else deletes_nat+=("-D${line#-A}"); fi
        fi
        ;;
    esac
  done <<<"$saved"
  local input=
  for table in filter nat; do
    local -n dels=deletes_$table chs=chains_$table
    ((${#dels[@]} + ${#chs[@]} > 0)) || continue
    input+="*$table"$'\n'
    for line in "${dels[@]}"; do input+=$line$'\n'; done
    for chain in "${chs[@]}"; do input+="-F $chain"$'\n'; done
    for chain in "${chs[@]}"; do input+="-X $chain"$'\n'; done
    input+=$'COMMIT\n'
  done
  if [[ -n $input ]]; then
    iptables-restore --noflush -w <<<"$input"
  fi
}

teardown() {
  local s dir id
  local -A ids=()
  shopt -s nullglob
  for dir in "$WB_DIR"/*/; do
    dir=${dir%/}
    ids[${dir##*/}]=1
  done
  for dir in "$cgroup_root"/*/"$parent"/*/; do
    dir=${dir%/}
    ids[${dir##*/}]=1
  done
  for dir in /sys/class/net/wb-*-[0-9]; do
    dir=${dir##*/wb-}
    ids[${dir%-*}]=1
  done
  for id in "${!ids[@]}"; do
    if [[ $id =~ ^[a-z0-9]{1,10}$ ]]; then
      destroy "$id" lenient || true
    fi
  done
  purge_chains '^wbench-'
  for s in "${subsystems[@]}"; do
    if [[ -d $cgroup_root/$s/$parent ]]; then
      rmdir "$cgroup_root/$s/$parent"
    fi
  done
}

case ${1:-} in
  setup) setup ;;
  create) create "${2:?usage: $0 create ID}" ;;
  destroy) destroy "${2:?usage: $0 destroy ID}" ;;
  teardown) teardown ;;
  *)
    echo "usage: $0 setup|create ID|destroy ID|teardown" >&2
    exit 1
    ;;
esac
