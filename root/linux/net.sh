#!/bin/bash
# Global iptables rules for warden's containers.
#
#   net.sh setup     run at every server start. Env:
#                      POOL_NETWORK       CIDR of this server's container pool
#                      ALLOW_NETWORKS     space-separated CIDRs or addresses the
#                                         containers may reach (may be empty)
#                      ALLOW_HOST_ACCESS  true: containers may reach the host
#                                         itself (default false)
#   net.sh teardown  with POOL_NETWORK: remove that pool's rules; the shared
#                    chains go too once no pool and no container uses them.
#                    Without POOL_NETWORK: remove every warden-* chain and
#                    every rule pointing at one, of ALL containers and pools.
#                    ip_forward stays on.
#
# Several servers with different pools may share a host: setup changes only
# the shared skeleton and its own pool's rules, adds what is missing and
# never touches the per-container chains. Running it again is a no-op.
#
# filter table:
#   FORWARD        -o w-+ -j warden-forward-in   (first two rules)
#                  -i w-+ -j warden-forward
#   warden-forward-in  accept replies and port forwards (conntrack DNAT) into
#                  containers; anything else goes on to FORWARD's policy
#   warden-forward -i w-<id>-0 -g warden-i-<id> per container, then DROP
#   warden-i-<id>  the container's NetOut rules, newest first, then
#                  -g warden-default (written by the container's net.sh)
#   warden-default accept replies; per pool, accept what ALLOW_NETWORKS allows
#                  (-s POOL -d NET); REJECT everything else
#   INPUT          accept replies (comment warden-related-traffic); per pool
#                  unless ALLOW_HOST_ACCESS: accept DNS to the container's
#                  gateway (warden-dns-to-host), REJECT the rest
#                  (warden-block-traffic-to-host)
# nat table:
#   PREROUTING     -j warden-prerouting
#   OUTPUT         -o lo ! -d 127.0.0.0/8 -j warden-prerouting  (port forwards
#                  also work for clients on the host itself)
#   warden-prerouting  -j warden-i-<id> per container: its NetIn DNAT rules
#   POSTROUTING    -j warden-postrouting: per pool, MASQUERADE -s POOL ! -d POOL
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
here=${0%/*}
[[ $0 == */* ]] || here=.
# shellcheck source=skeleton/lib/net-common.sh
source "$here/skeleton/lib/net-common.sh"

fail() {
  echo "net.sh: $*" >&2
  exit 1
}

setup() {
  local pool net rule
  [[ -n ${POOL_NETWORK:-} ]] || fail "POOL_NETWORK is not set"
  ipv4_cidr "$POOL_NETWORK" || fail "POOL_NETWORK is not an IPv4 network: '$POOL_NETWORK'"
  pool=$REPLY
  local -a allow=() entries=()
  read -ra entries <<<"${ALLOW_NETWORKS:-}"
  for net in "${entries[@]}"; do
    ipv4_cidr "$net" || fail "ALLOW_NETWORKS: not an IPv4 address or network: '$net'"
    if [[ $REPLY == */0 ]]; then
      allow+=("-s $pool -j ACCEPT") # as iptables prints "-d 0.0.0.0/0"
    else
      allow+=("-s $pool -d $REPLY -j ACCEPT")
    fi
  done
  local host_access=${ALLOW_HOST_ACCESS:-false}
  [[ $host_access == true || $host_access == false ]] ||
    fail "ALLOW_HOST_ACCESS must be true or false, not '$host_access'"

  ipt_load

  # --- filter -----------------------------------------------------------------
  # warden-default: keep the other pools' allowances, replace ours where
  # they were (so that re-running either server's setup is a no-op).
  local -a default_rules=("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
  local placed=false
  ipt_rules_of filter "$default_chain"
  for rule in "${REPLY_RULES[@]}"; do
    rule=${rule#"-A $default_chain "}
    if [[ $rule == "-s $pool "* ]]; then
      if [[ $placed == false ]]; then
        default_rules+=("${allow[@]}")
        placed=true
      fi
    elif [[ $rule == "-s "*" -j ACCEPT" ]]; then
      default_rules+=("$rule")
    fi
  done
  if [[ $placed == false ]]; then
    default_rules+=("${allow[@]}")
  fi
  default_rules+=("-j REJECT --reject-with icmp-port-unreachable")
  ipt_ensure_chain filter "$default_chain" "${default_rules[@]}"

  ipt_ensure_chain filter "$forward_in_chain" \
    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" \
    "-m conntrack --ctstate DNAT -j ACCEPT"

  # warden-forward holds the per-container gotos: never flush it, only make
  # sure that it exists and ends in DROP.
  if ! ipt_has_chain filter "$forward_chain"; then
    ipt_add filter "-N $forward_chain" "-A $forward_chain -j DROP"
  else
    ipt_rules_of filter "$forward_chain"
    local n=${#REPLY_RULES[@]}
    if ((n == 0)) || [[ ${REPLY_RULES[n - 1]} != "-A $forward_chain -j DROP" ]]; then
      for rule in "${REPLY_RULES[@]}"; do
        if [[ $rule == "-A $forward_chain -j DROP" ]]; then
          ipt_add filter "-D${rule#-A}"
        fi
      done
      ipt_add filter "-A $forward_chain -j DROP"
    fi
  fi

  # At the top of FORWARD, so that no rule of the host's own firewall can
  # accept container traffic before the containers' rules have seen it.
  ipt_ensure_rules filter FORWARD " -j ($forward_chain|$forward_in_chain)\$" first \
    "-o w-+ -j $forward_in_chain" \
    "-i w-+ -j $forward_chain"

  # INPUT: replies first (the host may connect into a container even when
  # the container may not connect to the host), then each pool's rules.
  ipt_ensure_rules filter INPUT "--comment warden-related-traffic " first \
    "-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment warden-related-traffic -j ACCEPT"
  local -a input_rules=()
  if [[ $host_access == false ]]; then
    # DNS stays open: a container may use a resolver on the host at its
    # gateway address (setup.sh points resolv.conf there when the host
    # resolves on 127.0.0.1). The gateways are the host's pool addresses.
    input_rules+=(
      "-s $pool -d $pool -p udp -m udp --dport 53 -m comment --comment warden-dns-to-host -j ACCEPT"
      "-s $pool -d $pool -p tcp -m tcp --dport 53 -m comment --comment warden-dns-to-host -j ACCEPT"
      "-s $pool -m comment --comment warden-block-traffic-to-host -j REJECT --reject-with icmp-port-unreachable"
    )
  fi
  ipt_ensure_rules filter INPUT "^-A INPUT -s ${pool//./\\.} .*--comment warden-" after-first \
    "${input_rules[@]}"

  # --- nat --------------------------------------------------------------------
  if ! ipt_has_chain nat "$prerouting_chain"; then
    ipt_add nat "-N $prerouting_chain"
  fi
  if ! ipt_has_chain nat "$postrouting_chain"; then
    ipt_add nat "-N $postrouting_chain"
  fi
  # Containers reach other networks with the host's address.
  local masquerade="-A $postrouting_chain -s $pool ! -d $pool -j MASQUERADE" have=false
  ipt_rules_of nat "$postrouting_chain"
  for rule in "${REPLY_RULES[@]}"; do
    if [[ $rule == "$masquerade" ]]; then
      have=true
    fi
  done
  if [[ $have == false ]]; then
    ipt_add nat "$masquerade"
  fi
  ipt_ensure_rules nat PREROUTING " -j $prerouting_chain\$" first "-j $prerouting_chain"
  ipt_ensure_rules nat OUTPUT " -j $prerouting_chain\$" first "! -d 127.0.0.0/8 -o lo -j $prerouting_chain"
  ipt_ensure_rules nat POSTROUTING " -j $postrouting_chain\$" first "-j $postrouting_chain"

  ipt_apply

  # Containers reach other networks (and each other) through the host.
  echo 1 >/proc/sys/net/ipv4/ip_forward
}

# pool_rules_left: are there rules of any pool, or container chains, left?
pool_rules_left() {
  local name rule
  for name in "${ipt_chains_filter[@]}" "${ipt_chains_nat[@]}"; do
    [[ $name == warden-i-* ]] && return 0
  done
  for rule in "${ipt_rules_filter[@]}" "${ipt_rules_nat[@]}"; do
    [[ $rule == "-A $default_chain -s "* || $rule == "-A $postrouting_chain -s "* ]] && return 0
    [[ $rule == "-A INPUT -s "*"--comment warden-"* ]] && return 0
  done
  return 1
}

teardown_pool() {
  local pool rule kept=()
  ipv4_cidr "$POOL_NETWORK" || fail "POOL_NETWORK is not an IPv4 network: '$POOL_NETWORK'"
  pool=$REPLY
  ipt_load
  for rule in "${ipt_rules_filter[@]}"; do
    if [[ $rule == "-A $default_chain -s $pool "* || $rule == "-A INPUT -s $pool "*"--comment warden-"* ]]; then
      ipt_add filter "-D${rule#-A}"
    else
      kept+=("$rule")
    fi
  done
  ipt_rules_filter=("${kept[@]}")
  kept=()
  for rule in "${ipt_rules_nat[@]}"; do
    if [[ $rule == "-A $postrouting_chain -s $pool "* ]]; then
      ipt_add nat "-D${rule#-A}"
    else
      kept+=("$rule")
    fi
  done
  ipt_rules_nat=("${kept[@]}")
  if ! pool_rules_left; then
    ipt_purge filter '^warden-' 'warden-'
    ipt_purge nat '^warden-' 'warden-'
  fi
  ipt_apply
}

teardown() {
  if [[ -n ${POOL_NETWORK:-} ]]; then
    teardown_pool
    return
  fi
  ipt_load
  ipt_purge filter '^warden-' 'warden-'
  ipt_purge nat '^warden-' 'warden-'
  ipt_apply
}

case ${1:-} in
  setup) setup ;;
  teardown) teardown ;;
  *)
    echo "usage: $0 setup|teardown" >&2
    exit 1
    ;;
esac
