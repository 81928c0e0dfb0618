#!/bin/bash
# The container's network rules (iptables) and its bandwidth report (tc).
# Runs in the container dir and reads etc/config (id, network_container_ip).
# root/linux/net.sh setup must have created the global chains.
#
#   net.sh setup      create the container's chains, empty: everything it
#                     sends goes to warden-default (replies and
#                     ALLOW_NETWORKS pass, the rest is rejected). On an
#                     existing container it starts over from empty (the
#                     server then replays every in/out rule).
#   net.sh teardown   remove the container's chains and the jumps to them.
#                     Fine when they do not exist.
#   net.sh in         forward HOST_PORT on every host address to
#                     CONTAINER_PORT in the container (tcp).
#   net.sh out        let the container reach NETWORK (a.b.c.d, a.b.c.d/n or
#                     a.b.c.d-e.f.g.h) and/or PORTS (N or A:B) with PROTOCOL
#                     (tcp, udp, icmp, all; default tcp). icmp: ICMP_TYPE and
#                     ICMP_CODE (empty or -1: any). LOG=true logs each new
#                     connection with the prefix "warden-i-<id> ". The newest
#                     rule is checked first.
#                     in and out add a rule on every call; the server runs
#                     each once (and replays them all after a setup).
#   net.sh get_ingress_info   print "rate=<bits/s> burst=<bytes>" of the
#   net.sh get_egress_info    limit on traffic into (w-<id>-0) / out of
#                     (w-<id>-2) the container; nothing when there is none.
#
# Chains: filter warden-i-<id> (the NetOut rules, entered by a goto from
# warden-forward for packets from w-<id>-0), filter warden-i-<id>-log (LOG,
# then ACCEPT), nat warden-i-<id> (the NetIn DNAT rules, jumped to from
# warden-prerouting). Port-forwarded traffic into the container is accepted
# by the global warden-forward-in (conntrack state DNAT).
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/ifaces.sh
source lib/ifaces.sh
# shellcheck source=lib/net-common.sh
source lib/net-common.sh

require_params id
chain=warden-i-$id
log_chain=$chain-log
# host_iface: host end of the veth, where traffic into the container leaves;
# ifb_iface: where traffic out of the container is shaped.
iface_names

fail() {
  echo "net.sh $verb: $*" >&2
  exit 1
}

# The restore commands that create the container's chains from scratch.
queue_new_chains() {
  ipt_add filter \
    "-A $log_chain -m conntrack --ctstate NEW -j LOG --log-prefix \"$chain \"" \
    "-A $log_chain -j ACCEPT" \
    "-A $chain -g $default_chain" \
    "-I $forward_chain 1 -i $host_iface -g $chain"
  ipt_add nat "-A $prerouting_chain -j $chain"
}

setup() {
  # Fast path, a new container: one transaction per table that fails as a
  # whole (-N) if any of the chains exists already.
  ipt_add filter "-N $chain" "-N $log_chain"
  ipt_add nat "-N $chain"
  queue_new_chains
  if ipt_apply 2>/dev/null; then
    return 0
  fi

  # Something is there already (a restart, a re-run, a half setup): list
  # the rules, then in one transaction per table drop our chains and every
  # reference to them and create them anew, empty.
  ipt_load
  local table name
  for name in "$forward_chain" "$default_chain"; do
    ipt_has_chain filter "$name" ||
      fail "filter chain $name is missing: run root/linux/net.sh setup first"
  done
  ipt_has_chain nat "$prerouting_chain" ||
    fail "nat chain $prerouting_chain is missing: run root/linux/net.sh setup first"
  for table in filter nat; do
    ipt_purge "$table" "^$chain(-log)?\$"
  done
  ipt_add filter "-N $chain" "-N $log_chain"
  ipt_add nat "-N $chain"
  queue_new_chains
  ipt_apply
}

teardown() {
  # Fast path: the state setup left, whatever the chains hold.
  ipt_add filter \
    "-D $forward_chain -i $host_iface -g $chain" \
    "-F $chain" "-F $log_chain" "-X $chain" "-X $log_chain"
  ipt_add nat \
    "-D $prerouting_chain -j $chain" \
    "-F $chain" "-X $chain"
  if ipt_apply 2>/dev/null; then
    return 0
  fi
  # Anything else (never set up, torn down already, half done): remove
  # whatever is left. A table whose transaction went through above has
  # nothing left.
  ipt_load
  local table
  for table in filter nat; do
    ipt_purge "$table" "^$chain(-log)?\$"
  done
  ipt_apply
}

# is_port VALUE: a port number 1..65535.
is_port() {
  [[ $1 =~ ^[0-9]{1,5}$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535))
}

# is_byte VALUE: a number 0..255 (an ICMP type or code).
is_byte() {
  [[ $1 =~ ^[0-9]{1,3}$ ]] && ((10#$1 <= 255))
}

net_in() {
  local host_port=${HOST_PORT:-} container_port=${CONTAINER_PORT:-}
  [[ -n $host_port ]] || fail "Please specify HOST_PORT..."
  [[ -n $container_port ]] || fail "Please specify CONTAINER_PORT..."
  is_port "$host_port" || fail "HOST_PORT is not a port number: '$host_port'"
  is_port "$container_port" || fail "CONTAINER_PORT is not a port number: '$container_port'"
  require_params network_container_ip
  # Any local address of the host: its external one, the gateway address a
  # container sees, and so on. Loopback is excluded by the OUTPUT jump.
  iptables -w -t nat -A "$chain" -p tcp -m addrtype --dst-type LOCAL \
    --dport "$((10#$host_port))" \
    -j DNAT --to-destination "$network_container_ip:$((10#$container_port))" ||
    fail "adding the port forward failed (has 'net.sh setup' run?)"
}

net_out() {
  local network=${NETWORK:-} ports=${PORTS:-} protocol=${PROTOCOL:-}
  local icmp_type=${ICMP_TYPE:-} icmp_code=${ICMP_CODE:-} log=${LOG:-}
  local -a rule=()
  [[ $icmp_type != -1 ]] || icmp_type=
  [[ $icmp_code != -1 ]] || icmp_code=
  protocol=${protocol:-tcp}

  case $protocol in
    tcp | udp | icmp | all) ;;
    *) fail "PROTOCOL must be tcp, udp, icmp or all, not '$protocol'" ;;
  esac
  if [[ $protocol != icmp && -z $network && -z $ports ]]; then
    fail "Please specify NETWORK and/or PORTS..."
  fi
  rule+=(-p "$protocol")

  if [[ $network == *-* ]]; then
    if ! ipv4_addr "${network%%-*}" || ! ipv4_addr "${network#*-}"; then
      fail "NETWORK is not an address range a.b.c.d-e.f.g.h: '$network'"
    fi
    rule+=(-m iprange --dst-range "$network")
  elif [[ -n $network ]]; then
    ipv4_cidr "$network" || fail "NETWORK is not an IPv4 address or network: '$network'"
    rule+=(-d "$network")
  fi

  if [[ -n $ports ]]; then
    if [[ $protocol != tcp && $protocol != udp ]]; then
      fail "PORTS needs PROTOCOL tcp or udp, not '$protocol'"
    fi
    local low=${ports%%:*} high=${ports#*:}
    if ! is_port "$low" || ! is_port "$high"; then
      fail "PORTS must be N or A:B (1-65535): '$ports'"
    fi
    ((10#$high >= 10#$low)) || fail "Port range maximum must be greater than minimum: '$ports'"
    rule+=(--dport "$ports")
  fi

  if [[ -n $icmp_type || -n $icmp_code ]]; then
    [[ $protocol == icmp ]] || fail "ICMP_TYPE and ICMP_CODE need PROTOCOL icmp, not '$protocol'"
    [[ -n $icmp_type ]] || fail "ICMP_CODE needs an ICMP_TYPE"
    is_byte "$icmp_type" || fail "ICMP_TYPE must be 0-255: '$icmp_type'"
    if [[ -n $icmp_code ]]; then
      is_byte "$icmp_code" || fail "ICMP_CODE must be 0-255: '$icmp_code'"
      rule+=(--icmp-type "$((10#$icmp_type))/$((10#$icmp_code))")
    else
      rule+=(--icmp-type "$((10#$icmp_type))")
    fi
  fi

  if [[ $log == true ]]; then
    rule+=(-g "$log_chain")
  else
    rule+=(-j ACCEPT)
  fi
  # At the top: the newest rule wins, and the goto warden-default stays last.
  iptables -w -I "$chain" 1 "${rule[@]}" ||
    fail "adding the rule failed (has 'net.sh setup' run?)"
}

# print_tbf IFACE: "rate=<bits/s> burst=<bytes>" of the tbf at the root of
# IFACE, nothing when there is none (or no such interface, e.g. after the
# container stopped). tc -j reports the rate in bytes/s and the burst in
# bytes, so no units need parsing. The kernel keeps the burst as a time in
# 64 ns ticks, so what tc reads back may be a little less than what was set
# (e.g. 1600 bytes at 1 Gbit/s reads back as 1500); when it is within that
# rounding of what net_rate.sh last set (run/net_rate), the value set is
# printed.
print_tbf() {
  local iface=$1 json rate burst
  if [[ ! -e /sys/class/net/$iface ]]; then
    return 0
  fi
  json=$(tc -j qdisc show dev "$iface" root)
  if [[ ! $json =~ \"kind\":\"tbf\" ]]; then
    return 0
  fi
  [[ $json =~ \"rate\":([0-9]+) ]] || fail "no rate in: $json"
  rate=$((BASH_REMATCH[1] * 8))
  [[ $json =~ \"burst\":([0-9]+) ]] || fail "no burst in: $json"
  burst=${BASH_REMATCH[1]}
  if [[ -r run/net_rate ]]; then
    local set_rate set_burst
    read -r set_rate set_burst <run/net_rate || true
    set_rate=${set_rate#rate=}
    set_burst=${set_burst#burst=}
    if [[ $set_rate =~ ^[0-9]+$ && $set_burst =~ ^[0-9]+$ ]] &&
      ((set_rate / 8 * 8 == rate)); then
      # Up to one microsecond plus one tick of traffic, and a byte or two
      # of integer rounding.
      local slack=$((rate * 1064 / 8000000000 + 2))
      if ((set_burst >= burst && set_burst - burst <= slack)); then
        rate=$set_rate
        burst=$set_burst
      fi
    fi
  fi
  echo "rate=$rate burst=$burst"
}

verb=${1:-}
case $verb in
  setup) setup ;;
  teardown) teardown ;;
  in) net_in ;;
  out) net_out ;;
  get_ingress_info) print_tbf "$host_iface" ;;
  get_egress_info) print_tbf "$ifb_iface" ;;
  *)
    echo "usage: $0 setup|teardown|in|out|get_ingress_info|get_egress_info" >&2
    exit 1
    ;;
esac
