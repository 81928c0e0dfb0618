#!/usr/bin/env bash
# Tests for devices-bpf in real cgroup v2 directories (needs root and a
# cgroup2 mount; on this project's hybrid hosts that is the empty-controller
# hierarchy at /sys/fs/cgroup/unified: device programs work there whatever
# the v1 controllers are). Makes <cgroup2>/warden-test-devices-<pid>[/...]
# and removes them, and every node and process it makes, on exit.
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=../test-lib.sh
source "$(dirname -- "$0")/../test-lib.sh"
cd "$(dirname "$0")" || exit 1

# The cgroup2 mount: $WARDEN_CGROUP2_ROOT, else the first in /proc/mounts.
root=${WARDEN_CGROUP2_ROOT:-$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)}
group=$root/warden-test-devices-$$
failures=0
pids=()
tmp=

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# remove_tree DIR: what is left in DIR and below (there should be nothing)
# goes back to the root, and the directories go, deepest first.
remove_tree() {
  local dir
  [[ -d $1 ]] || return 0
  while read -r dir; do
    remove_group "$dir" "$root"
  done < <(find "$1" -depth -type d)
}

cleanup() {
  kill_pids
  remove_tree "$group"
  [[ -z $tmp ]] || rm -rf "$tmp"
}
trap cleanup EXIT

if [[ $EUID -ne 0 || -z $root || ! -f $root/cgroup.procs ]]; then
  echo "devices test: needs root and a cgroup2 mount (found: '${root}')" >&2
  exit 1
fi
tmp=$(mktemp -d)
mkdir "$group"

# Device nodes made here, outside any cgroup with a program, so that the
# kernel lets us: full is not on the list, a block device is not either, a
# pts number is (136:*), null is.
mknod "$tmp/full" c 1 7
mknod "$tmp/block" b 253 0
mknod "$tmp/pts" c 136 4000
mknod "$tmp/null" c 1 3

# inside DIR CMD...: runs CMD in the cgroup DIR, in the foreground; prints
# its stderr (its stdout is dropped), its status is the status.
inside() {
  local dir=$1
  shift
  sh -c 'echo $$ >"$1/cgroup.procs" || exit 99; shift; exec "$@"' inside "$dir" "$@" 2>&1 >/dev/null
}

# denied DIR WHAT CMD...: CMD must fail with EPERM in DIR.
denied() {
  local dir=$1 what=$2 out
  shift 2
  out=$(inside "$dir" "$@")
  local rc=$?
  [[ $rc -ne 0 && $rc -ne 99 && $out == *"Operation not permitted"* ]] ||
    fail "$what: want EPERM, got exit $rc: $out"
}

# allowed DIR WHAT CMD...: CMD must succeed in DIR.
allowed() {
  local dir=$1 what=$2 out
  shift 2
  out=$(inside "$dir" "$@")
  local rc=$?
  [[ $rc -eq 0 ]] || fail "$what: want success, got exit $rc: $out"
}

# ours DIR: the number of our programs attached to DIR.
ours() {
  ./devices-bpf list "$1" | wc -l
}

# --- usage -------------------------------------------------------------------------
./devices-bpf >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "no arguments must exit 2"
./devices-bpf frob "$group" >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "an unknown command must exit 2"
./devices-bpf detach "$group" extra >/dev/null 2>&1
[[ $? -eq 2 ]] || fail "detach with a rule must exit 2"
for bad in 'x 1:3 rw' 'c 1:3' 'c 1-3 rw' 'c 1:3 rwq' 'c 1:3 ' 'c 4294967296:1 r' 'c :3 r'; do
  ./devices-bpf attach "$group" "$bad" >/dev/null 2>&1
  [[ $? -eq 2 ]] || fail "bad rule '$bad' must exit 2"
done
[[ $(ours "$group") -eq 0 ]] || fail "a bad rule left a program attached"
err=$(./devices-bpf attach "$tmp" 2>&1)
rc=$?
[[ $rc -eq 1 && $err == *"not a cgroup v2 directory"* ]] || fail "attach to a plain dir: exit $rc, '$err'"
err=$(./devices-bpf attach "$group-missing" 2>&1)
rc=$?
[[ $rc -eq 1 && $err == *"No such file"* ]] || fail "attach to a missing dir: exit $rc, '$err'"
./devices-bpf detach "$group-missing"
[[ $? -eq 0 ]] || fail "detach of a missing dir must succeed"
[[ $(./devices-bpf rules | wc -l) -eq 8 ]] || fail "rules does not print 8 rules"

# --- before: nothing attached, everything works ----------------------------------------
allowed "$group" "read full, no program" head -c1 "$tmp/full"

# --- the default whitelist -------------------------------------------------------
./devices-bpf attach "$group" || fail "attach with the default rules failed"
[[ $(ours "$group") -eq 1 ]] || fail "attach: want one program, have $(ours "$group")"
allowed "$group" "read /dev/null" head -c1 /dev/null
allowed "$group" "write /dev/null" sh -c 'echo x >/dev/null'
allowed "$group" "read a mknod'ed null" head -c1 "$tmp/null"
allowed "$group" "read /dev/zero" head -c1 /dev/zero
allowed "$group" "read /dev/urandom" head -c1 /dev/urandom
denied "$group" "read full (1:7)" head -c1 "$tmp/full"
denied "$group" "write full (1:7)" sh -c "echo x >'$tmp/full'"
denied "$group" "open a block device (b 253:0)" head -c1 "$tmp/block"
denied "$group" "mknod c 1:3 (no m in any rule)" mknod "$tmp/inside" c 1 3
denied "$group" "mknod b 8:0" mknod "$tmp/inside" b 8 0
[[ ! -e $tmp/inside ]] || fail "a node was made inside the group"
# 136:* is allowed: opening an unallocated pts fails as it does outside, not EPERM.
out=$(inside "$group" head -c1 "$tmp/pts")
[[ $out != *"Operation not permitted"* ]] || fail "pts 136:4000 denied: $out"
# Outside the group nothing changed.
head -c1 "$tmp/full" >/dev/null || fail "reading full outside the group failed"

# --- a sub-cgroup cannot undo it (BPF_F_ALLOW_MULTI: every program runs) ------------------
mkdir "$group/sub"
denied "$group/sub" "read full in a sub-cgroup" head -c1 "$tmp/full"
./devices-bpf attach "$group/sub" a || fail "attach 'a' to the sub-cgroup failed"
denied "$group/sub" "read full in a sub-cgroup that allows all" head -c1 "$tmp/full"
allowed "$group/sub" "read null in the sub-cgroup" head -c1 /dev/null
./devices-bpf detach "$group/sub" || fail "detach from the sub-cgroup failed"
rmdir "$group/sub"

# --- attach again replaces ----------------------------------------------------------------
first=$(./devices-bpf list "$group")
./devices-bpf attach "$group" 'c 1:7 r' || fail "attach 'c 1:7 r' failed"
second=$(./devices-bpf list "$group")
[[ $(ours "$group") -eq 1 && $second != "$first" ]] ||
  fail "attach again: want one new program, have '$second' (was '$first')"
allowed "$group" "read full with 'c 1:7 r'" head -c1 "$tmp/full"
denied "$group" "write full with 'c 1:7 r'" sh -c "echo x >'$tmp/full'"
denied "$group" "open full read-write with 'c 1:7 r'" sh -c "exec 3<>'$tmp/full'"
denied "$group" "read null with 'c 1:7 r'" head -c1 /dev/null

# --- detach, twice --------------------------------------------------------------------------
./devices-bpf detach "$group" || fail "detach failed"
[[ $(ours "$group") -eq 0 ]] || fail "detach left $(ours "$group") program(s)"
allowed "$group" "read full after detach" head -c1 "$tmp/full"
./devices-bpf detach "$group" || fail "a second detach failed"

# --- removing the cgroup frees an attached program ----------------------------------
./devices-bpf attach "$group" || fail "attach before rmdir failed"
rmdir "$group" || fail "rmdir of a cgroup with a program failed"

if ((failures != 0)); then
  echo "devices-bpf: $failures test(s) failed" >&2
  exit 1
fi
echo "devices-bpf: all tests passed"
