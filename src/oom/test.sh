#!/usr/bin/env bash
# Tests for oom, in real memory cgroups (needs root and cgroup v1 memory at
# /sys/fs/cgroup/memory). Makes /sys/fs/cgroup/memory/warden/test-oom-<pid>-*
# and removes them, and every process it starts, on exit.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=../test-lib.sh
source "$(dirname -- "$0")/../test-lib.sh"
cd "$(dirname "$0")" || exit 1

memory=${WARDEN_CGROUP_ROOT:-/sys/fs/cgroup}/memory
parent=$memory/warden
prefix=$parent/test-oom-$$
failures=0
pids=()
groups=()
made_parent=false

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

cleanup() {
  local dir
  kill_pids
  for dir in "${groups[@]}"; do
    remove_group "$dir" "$memory"  # tasks still there (should be none) go back to the root
  done
  if $made_parent; then
    rmdir "$parent" 2>/dev/null
  fi
  rm -f "$oom_err"
}
oom_err=$(mktemp)
trap cleanup EXIT

if [[ $EUID -ne 0 || ! -f $memory/memory.oom_control ]]; then
  echo "oom test: needs root and cgroup v1 memory at $memory" >&2
  exit 1
fi
if [[ ! -d $parent ]]; then
  mkdir "$parent"
  made_parent=true
fi

# new_group NAME LIMIT: a memory group with LIMIT as memory and memory+swap
# limit; sets $group.
new_group() {
  group=$prefix-$1
  mkdir "$group"
  groups+=("$group")
  echo "$2" >"$group/memory.limit_in_bytes"
  if [[ -f $group/memory.memsw.limit_in_bytes ]]; then
    echo "$2" >"$group/memory.memsw.limit_in_bytes"
  fi
}

# start_oom DIR: runs ./oom DIR in the background, stderr to $oom_err; sets
# $oom_pid.
start_oom() {
  ./oom "$1" 2>"$oom_err" &
  oom_pid=$!
  pids+=("$oom_pid")
}

# wait_blocked PID: until PID sleeps with its eventfd open (it is then
# registered and waiting).
wait_blocked() {
  local i fd state
  for ((i = 0; i < 200; i++)); do
    for fd in "/proc/$1/fd/"*; do
      if [[ $(readlink "$fd") == *eventfd* ]]; then
        state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
        if [[ $state == S ]]; then
          return 0
        fi
      fi
    done
    sleep 0.01
  done
  return 1
}


# hog DIR MIB: runs memhog in the group DIR in the background; sets $hog_pid.
hog() {
  sh -c 'echo $$ >"$1/cgroup.procs" && exec ./memhog "$2"' hog "$1" "$2" &
  hog_pid=$!
  pids+=("$hog_pid")
}

# --- usage ---------------------------------------------------------------------
./oom >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "no arguments must exit 2"
./oom a b >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "two arguments must exit 2"
err=$(./oom /nonexistent/group 2>&1)
rc=$?
[[ $rc -eq 1 && $err == *"No such file"* ]] || fail "missing group: exit $rc, '$err'"

# --- a real OOM: the job is killed, oom exits 0 --------------------------------
new_group kill $((16 << 20))
start_oom "$group"
wait_blocked "$oom_pid" || fail "oom did not start waiting"
hog "$group" 64
if exits_within 20 "$hog_pid" 2>/dev/null; then
  [[ $status -eq 137 ]] || fail "memhog in a 16 MiB group exited $status (want SIGKILL, 137)"
else
  fail "memhog was not killed"
fi
if exits_within 10 "$oom_pid"; then
  [[ $status -eq 0 ]] || fail "oom exited $status after an OOM (want 0): $(cat "$oom_err")"
  [[ ! -s $oom_err ]] || fail "oom printed something after an OOM: $(cat "$oom_err")"
else
  fail "oom did not notice the OOM"
fi

# --- the group is under OOM already: exit 0 at once ------------------------------
new_group paused $((16 << 20))
echo 1 >"$group/memory.oom_control"   # no OOM killer: the hog waits under OOM
hog "$group" 64
for ((i = 0; i < 500; i++)); do
  grep -qx 'under_oom 1' "$group/memory.oom_control" && break
  sleep 0.01
done
grep -qx 'under_oom 1' "$group/memory.oom_control" || fail "the paused group never got under OOM"
start_oom "$group"
if exits_within 5 "$oom_pid"; then
  [[ $status -eq 0 ]] || fail "oom on a group under OOM exited $status (want 0): $(cat "$oom_err")"
else
  fail "oom on a group under OOM kept waiting"
fi
kill -KILL "$hog_pid" 2>/dev/null
wait "$hog_pid" 2>/dev/null
echo 0 >"$group/memory.oom_control"

# --- the group is removed: exit 1 -------------------------------------------------
new_group gone $((16 << 20))
start_oom "$group"
wait_blocked "$oom_pid" || fail "oom did not start waiting"
rmdir "$group"
if exits_within 10 "$oom_pid"; then
  [[ $status -eq 1 ]] || fail "oom exited $status after rmdir (want 1)"
  grep -q 'removed' "$oom_err" || fail "no 'removed' message after rmdir: $(cat "$oom_err")"
else
  fail "oom did not notice the rmdir"
fi

# --- it dies with its parent ----------------------------------------------------------
new_group orphan $((16 << 20))
pidfile=$(mktemp)
sh -c './oom "$1" & echo $! >"$2"; exec sleep 60' parent "$group" "$pidfile" &
parent_pid=$!
pids+=("$parent_pid")
for ((i = 0; i < 200; i++)); do
  [[ -s $pidfile ]] && break
  sleep 0.01
done
read -r child <"$pidfile"
rm -f "$pidfile"
wait_blocked "$child" || fail "oom (child of sh) did not start waiting"
kill -KILL "$parent_pid"
wait "$parent_pid" 2>/dev/null
gone=false
for ((i = 0; i < 200; i++)); do
  if [[ ! -e /proc/$child ]] || [[ $(awk '{print $3}' "/proc/$child/stat" 2>/dev/null) == Z ]]; then
    gone=true
    break
  fi
  sleep 0.01
done
if ! $gone; then
  fail "oom outlived its parent"
  kill -KILL "$child"
fi

if ((failures != 0)); then
  echo "oom: $failures test(s) failed" >&2
  exit 1
fi
echo "oom: all tests passed"
