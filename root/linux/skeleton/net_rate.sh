#!/bin/bash
# Limit the container's bandwidth, both ways, to RATE bits/s with bursts of
# BURST bytes (env). Replaces any earlier limit; safe to re-run.
#
#   into the container: a tbf at the root of w-<id>-0 (the host end of the
#     veth: what the host sends to the container leaves through it)
#   out of the container: what the container sends arrives at w-<id>-0's
#     ingress, which the kernel cannot queue, so a match-all filter there
#     redirects it to the ifb w-<id>-2, whose root tbf queues it
#
# Also records the values in run/net_rate, so that "net.sh get_*_info" can
# report them exactly (the kernel keeps the burst rounded).
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/ifaces.sh
source lib/ifaces.sh

require_params id
rate=${RATE:-}
burst=${BURST:-}
if [[ -z $rate ]]; then
  echo "Please specify RATE..." >&2
  exit 1
fi
if [[ -z $burst ]]; then
  echo "Please specify BURST..." >&2
  exit 1
fi
# tc keeps the rate in bytes/s: below 8 bits/s it would be 0.
if [[ ! $rate =~ ^[0-9]+$ ]] || ((10#$rate < 8)); then
  echo "net_rate.sh: RATE must be a number of bits/s, at least 8: '$rate'" >&2
  exit 1
fi
if [[ ! $burst =~ ^[0-9]+$ ]] || ((10#$burst < 1)); then
  echo "net_rate.sh: BURST must be a positive number of bytes: '$burst'" >&2
  exit 1
fi
rate=$((10#$rate))
burst=$((10#$burst))
iface_names
tbf="tbf rate ${rate}bit burst $burst latency 25ms"

# replace: change in place, no moment without a limit. The filter has a
# fixed priority and handle, so replacing it never adds a second one.
tc -batch - <<EOF_TC
qdisc replace dev $host_iface root $tbf
qdisc replace dev $ifb_iface root $tbf
qdisc replace dev $host_iface handle ffff: ingress
filter replace dev $host_iface parent ffff: protocol all prio 1 handle 800::800 u32 match u32 0 0 action mirred egress redirect dev $ifb_iface
EOF_TC

# A reader checks these against the kernel's values, so a torn or stale
# file is harmless.
[[ -d run ]] || mkdir run
printf 'rate=%s burst=%s\n' "$rate" "$burst" >run/net_rate
