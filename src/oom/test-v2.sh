#!/usr/bin/env bash
# Tests for oom's cgroup v2 mode (memory.events + inotify).
#
# Fake groups: a temporary directory with a regular memory.events (and
# cgroup.events) that the test rewrites; inotify raises IN_MODIFY for
# regular files as kernfs does for cgroup files. Any user, any host.
# Files are rewritten in place with `1<>` (no truncation, same length), so
# the helper never reads a half-written file: kernfs files are never one.
#
# A real v2 OOM runs too where a cgroup2 mount offers the memory controller
# (the Debian 12 guest of the VM suite); on our hybrid hosts it cannot
# (memory is bound to v1) and says it is skipped. It makes
# <cgroup2>/warden-test-oom-<pid> and removes it on exit.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=../test-lib.sh
source "$(dirname -- "$0")/../test-lib.sh"
cd "$(dirname "$0")" || exit 1

failures=0
pids=()
tmp=$(mktemp -d)
real_group=
oom_err=$tmp/oom.err

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

cleanup() {
  kill_pids
  if [[ -n $real_group ]]; then
    remove_group "$real_group" "${real_group%/*}"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# events KILLS [GROUP_KILLS] [OOMS]: a memory.events body.
events() {
  printf 'low 0\nhigh 0\nmax 0\noom %d\noom_kill %d\noom_group_kill %d\n' "${3:-0}" "$1" "${2:-0}"
}

# fake NAME KILLS [POPULATED]: a fake group dir in $tmp; sets $group.
fake() {
  group=$tmp/$1
  mkdir "$group"
  events "$2" >"$group/memory.events"
  printf 'populated %d\nfrozen 0\n' "${3:-1}" >"$group/cgroup.events"
}

start_oom() {
  ./oom "$1" 2>"$oom_err" &
  oom_pid=$!
  pids+=("$oom_pid")
}

# wait_blocked PID: until PID sleeps with its inotify fd open.
wait_blocked() {
  local i fd
  for ((i = 0; i < 200; i++)); do
    for fd in "/proc/$1/fd/"*; do
      if [[ $(readlink "$fd") == *inotify* &&
        $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == S ]]; then
        return 0
      fi
    done
    sleep 0.01
  done
  return 1
}


# still_waiting WHAT: oom must not have exited (after a moment to react).
still_waiting() {
  sleep 0.3
  kill -0 "$oom_pid" 2>/dev/null || fail "$1: oom exited ($(cat "$oom_err"))"
}

# exits WHAT WANT [SECONDS]: oom exits with WANT.
exits() {
  if exits_within "${3:-5}" "$oom_pid"; then
    [[ $status -eq $2 ]] || fail "$1: oom exited $status (want $2): $(cat "$oom_err")"
  else
    fail "$1: oom did not exit"
  fi
}

# --- an oom_kill rise is an OOM; oom and oom_group_kill alone are not --------------------
fake kill 3
start_oom "$group"
wait_blocked "$oom_pid" || fail "oom did not start waiting on a fake v2 group"
still_waiting "kills before the start are not reported"
events 3 0 7 1<>"$group/memory.events"
still_waiting "oom rose, oom_kill did not"
events 3 5 7 1<>"$group/memory.events"
still_waiting "oom_group_kill rose, oom_kill did not"
events 4 5 7 1<>"$group/memory.events"
exits "oom_kill 3 -> 4" 0
[[ ! -s $oom_err ]] || fail "oom printed something after an OOM: $(cat "$oom_err")"

# --- the group is removed: exit 1 ---------------------------------------------------
fake gone 0
start_oom "$group"
wait_blocked "$oom_pid" || fail "oom did not start waiting"
rm -r "$group"
exits "rm -r of the group" 1
grep -q 'removed' "$oom_err" || fail "no 'removed' message after rm -r: $(cat "$oom_err")"

# --- memory.events replaced by rename: watched again --------------------------------------
fake renamed 0
start_oom "$group"
wait_blocked "$oom_pid" || fail "oom did not start waiting"
events 0 >"$group/new" && mv "$group/new" "$group/memory.events"
still_waiting "memory.events replaced, same count"
events 1 1<>"$group/memory.events"
exits "oom_kill rose in the replacing file" 0

# --- emptied, then removed without a file event: found by the look while empty -----------
# memory.events and cgroup.events are symlinks to files outside the group, so
# removing the group touches no watched inode (as an rmdir of a real cgroup).
mkdir "$tmp/outside"
events 0 >"$tmp/outside/memory.events"
printf 'populated 1\nfrozen 0\n' >"$tmp/outside/cgroup.events"
group=$tmp/silent
mkdir "$group"
ln -s ../outside/memory.events "$group/memory.events"
ln -s ../outside/cgroup.events "$group/cgroup.events"
start_oom "$group"
wait_blocked "$oom_pid" || fail "oom did not start waiting"
printf 'populated 0\nfrozen 0\n' 1<>"$tmp/outside/cgroup.events"
still_waiting "the group was emptied"
rm -r "$group"
exits "removal of an empty group with no event" 1 4
grep -q 'removed' "$oom_err" || fail "no 'removed' message: $(cat "$oom_err")"

# --- a memory.events without oom_kill: exit 1 -------------------------------------------
group=$tmp/nokill
mkdir "$group"
printf 'oom 0\n' >"$group/memory.events"
err=$(./oom "$group" 2>&1)
rc=$?
[[ $rc -eq 1 && $err == *"oom_kill"* ]] || fail "no oom_kill line: exit $rc, '$err'"

# --- it dies with its parent ----------------------------------------------------------
fake orphan 0
pidfile=$tmp/pid
sh -c './oom "$1" & echo $! >"$2"; exec sleep 60' parent "$group" "$pidfile" &
parent_pid=$!
pids+=("$parent_pid")
for ((i = 0; i < 200; i++)); do
  [[ -s $pidfile ]] && break
  sleep 0.01
done
read -r child <"$pidfile"
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

# --- a real OOM in a real v2 memory cgroup, where there is one ------------------------------
root=${WARDEN_CGROUP2_ROOT:-$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)}
if [[ $EUID -eq 0 && -n $root ]] && grep -qw memory "$root/cgroup.subtree_control" 2>/dev/null; then
  real_group=$root/warden-test-oom-$$
  mkdir "$real_group"
  echo $((16 << 20)) >"$real_group/memory.max"
  if [[ -f $real_group/memory.swap.max ]]; then
    echo 0 >"$real_group/memory.swap.max"
  fi
  start_oom "$real_group"
  wait_blocked "$oom_pid" || fail "oom did not start waiting on a real v2 group"
  sh -c 'echo $$ >"$1/cgroup.procs" && exec ./memhog "$2"' hog "$real_group" 64 &
  hog_pid=$!
  pids+=("$hog_pid")
  if exits_within 20 "$hog_pid"; then
    [[ $status -eq 137 ]] || fail "memhog in a 16 MiB v2 group exited $status (want 137)"
  else
    fail "memhog was not killed in a v2 group"
  fi
  exits "a real v2 OOM kill" 0 10
  start_oom "$real_group"
  wait_blocked "$oom_pid" || fail "oom did not start waiting on a real v2 group"
  rmdir "$real_group" || fail "rmdir of the real v2 group"
  exits "rmdir of an empty real v2 group" 1 4
  grep -q 'removed' "$oom_err" || fail "no 'removed' message after rmdir: $(cat "$oom_err")"
else
  echo "oom v2: no cgroup v2 memory controller here (${root:-no cgroup2 mount}): real OOM skipped; the VM suite runs it"
fi

if ((failures != 0)); then
  echo "oom v2: $failures test(s) failed" >&2
  exit 1
fi
echo "oom v2: all tests passed"
