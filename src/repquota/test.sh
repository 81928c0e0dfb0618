#!/usr/bin/env bash
# Tests for repquota. Hosts without quota support (like the development VMs)
# only see the error paths; with quotas on, the output format is checked.
set -uo pipefail
cd "$(dirname "$0")" || exit 1
BIN=./repquota
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect STATUS PATTERN ARGS...: runs repquota ARGS, wants exit STATUS and
# stderr matching the glob PATTERN.
expect() {
  local want=$1 pattern=$2 err rc
  shift 2
  err=$("$BIN" "$@" 2>&1 >/dev/null)
  rc=$?
  [[ $rc -eq $want ]] || fail "repquota $*: exit $rc (want $want): $err"
  # shellcheck disable=SC2053 # pattern is a glob on purpose
  [[ $err == $pattern ]] || fail "repquota $*: message '$err' does not match '$pattern'"
}

expect 2 '*usage:*'
expect 2 '*usage:*' /
expect 2 "*not a uid: 'abc'*" / abc
expect 2 "*not a uid: '-1'*" / -1
expect 2 "*not a uid: '12x'*" / 0 12x
expect 1 '*no filesystem is mounted at /nonexistent/mnt*' /nonexistent/mnt 0

if [[ $EUID -eq 0 ]]; then
  errfile=$(mktemp)
  out=$("$BIN" / 0 2>"$errfile")
  rc=$?
  err=$(<"$errfile")
  rm -f "$errfile"
  if ((rc == 0)); then
    # Quotas are on for /: one line of nine numbers.
    [[ $out =~ ^0(\ [0-9]+){8}$ ]] || fail "repquota / 0: unexpected output '$out'"
  else
    [[ $rc -eq 1 ]] || fail "repquota / 0: exit $rc (want 1)"
    [[ $err == *"no quota support"* || $err == *"no quota for this user"* ]] ||
      fail "repquota / 0 without quotas: unclear message '$err'"
    [[ -z $out ]] || fail "repquota / 0 failed but printed '$out'"
  fi
  # A trailing slash names the same mount point.
  expect "$rc" '*' // 0
fi

if ((failures != 0)); then
  echo "repquota: $failures test(s) failed" >&2
  exit 1
fi
echo "repquota: all tests passed"
