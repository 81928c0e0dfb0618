#!/bin/bash
# Stop every process in the container except wshd: SIGTERM, then SIGKILL
# once the grace period is over. Returns as soon as only wshd is left.
#
#   stop.sh [-w SECONDS]   grace period, default 10; -w 0 kills at once
set -euo pipefail
[[ -n "${DEBUG:-}" ]] && set -x
[[ $0 != */* ]] || cd "${0%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/cgroup.sh
source lib/cgroup.sh

usage() {
  echo "usage: $0 [-w SECONDS]" >&2
  exit 1
}

grace=10
while getopts ":w:h" opt; do
  case $opt in
    w) grace=$OPTARG ;;
    *) usage ;;
  esac
done
if [[ ! $grace =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  usage
fi

if [[ ! -f run/wshd.pid ]]; then
  echo "wshd is not running..." >&2
  exit 1
fi
require_params id
read -r wshd_pid <run/wshd.pid || true
find_cgroup_subsystems

# Microseconds since the epoch, without a subprocess.
now_us() {
  local t=${EPOCHREALTIME//[!0-9]/}
  now=$((10#$t))
}
now_us
whole=${grace%%.*}
frac=${grace#"$whole"}
frac=${frac#.}000000
deadline=$((now + 10#$whole * 1000000 + 10#${frac:0:6}))

declare -A termed=()
while true; do
  others=()
  # Every group of the container holds all its processes; any one will do.
  cgroup_read_procs --first
  for pid in "${container_pid_list[@]}"; do
    if [[ $pid != "$wshd_pid" ]]; then
      others+=("$pid")
    fi
  done
  if ((${#others[@]} == 0)); then
    exit 0
  fi
  now_us
  if ((now >= deadline)); then
    kill -KILL "${others[@]}" 2>/dev/null || true
  else
    # TERM each process once; the grace period is theirs to use.
    fresh=()
    for pid in "${others[@]}"; do
      if [[ -z ${termed[$pid]:-} ]]; then
        termed[$pid]=1
        fresh+=("$pid")
      fi
    done
    if ((${#fresh[@]} > 0)); then
      kill -TERM "${fresh[@]}" 2>/dev/null || true
    fi
  fi
  sleep 0.05
done
