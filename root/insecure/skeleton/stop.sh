#!/usr/bin/env bash
# Stop every running job of this container: TERM to each job's process group,
# then KILL once the grace period has passed.
# Usage: stop.sh [-w SECONDS]   (default 10; fractions allowed; -w 0 kills at once)
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"

usage() {
  echo "usage: $0 [-w SECONDS]" >&2
  exit 1
}

wait_seconds=10
while getopts "w:h" opt; do
  case $opt in
    w) wait_seconds=$OPTARG ;;
    *) usage ;;
  esac
done
if [[ ! $wait_seconds =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  usage
fi

# Microseconds since the epoch, without a subprocess.
now_us() {
  local t=${EPOCHREALTIME//[!0-9]/}
  now=$((10#$t))
}
whole=${wait_seconds%%.*}
frac=${wait_seconds#"$whole"}
frac=${frac#.}000000
grace_us=$((10#$whole * 1000000 + 10#${frac:0:6}))

# Process groups of jobs that have not finished; each job leads its own session.
running_groups() {
  local dir pid
  for dir in jobs/*/; do
    [[ -f "$dir/child_pid" && ! -f "$dir/status" ]] || continue
    pid=$(<"$dir/child_pid")
    if kill -0 -- "-$pid" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

signal_groups() {
  local signal=$1 pid
  shift
  for pid in "$@"; do
    kill "-$signal" -- "-$pid" 2>/dev/null || true
  done
}

mapfile -t groups < <(running_groups)
[[ ${#groups[@]} -gt 0 ]] || exit 0
if ((grace_us > 0)); then
  signal_groups TERM "${groups[@]}"
  now_us
  deadline=$((now + grace_us))
  while now_us; ((now < deadline)); do
    mapfile -t groups < <(running_groups)
    [[ ${#groups[@]} -gt 0 ]] || exit 0
    sleep 0.1
  done
fi
while true; do
  mapfile -t groups < <(running_groups)
  [[ ${#groups[@]} -gt 0 ]] || exit 0
  signal_groups KILL "${groups[@]}"
  sleep 0.05
done
