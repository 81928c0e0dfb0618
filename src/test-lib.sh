# shellcheck shell=bash
# What the C helpers' shell tests share (sourced by src/*/test*.sh).
# They keep the pids they start in the array `pids`; exits_within sets `status`.
# shellcheck disable=SC2154,SC2034 # pids and status belong to the sourcing test

# kill_pids: kill and reap every process in `pids`.
kill_pids() {
  local pid
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
}

# remove_group DIR TARGET: move what is left in cgroup DIR (there should be
# nothing) into TARGET, then remove DIR. A missing DIR is fine.
remove_group() {
  local pid
  [[ -d $1 ]] || return 0
  while read -r pid; do
    echo "$pid" >"$2/cgroup.procs" 2>/dev/null
  done <"$1/cgroup.procs"
  rmdir "$1" || echo "${0##*/}: could not remove $1" >&2
}

# exits_within SECONDS PID: PID's exit status in $status, or false on timeout.
exits_within() {
  local i
  for ((i = 0; i < $1 * 100; i++)); do
    if ! kill -0 "$2" 2>/dev/null; then
      wait "$2" 2>/dev/null
      status=$?
      return 0
    fi
    sleep 0.01
  done
  return 1
}
