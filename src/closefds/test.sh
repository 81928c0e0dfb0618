#!/bin/bash
# Tests for closefds; exits non-zero on the first failure.
set -u
cd "$(dirname "$0")"
BIN=./closefds
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Descriptors 5 and 200 are open here; the command must not see them.
exec 5</dev/null 200</dev/null
out=$("$BIN" /bin/sh -c 'for fd in 0 1 2 5 200; do [ -e /proc/$$/fd/$fd ] && printf "%s " $fd; done; exit 0')
[ "$out" = "0 1 2 " ] || fail "open fds after closefds: '$out' (want '0 1 2 ')"
exec 5<&- 200<&-

"$BIN" /bin/sh -c 'exit 7'
[ $? -eq 7 ] || fail "exit status of the command is not passed through"

"$BIN" >/dev/null 2>&1
[ $? -eq 255 ] || fail "no arguments must exit 255"

err=$("$BIN" /nonexistent/command 2>&1)
rc=$?
[ $rc -eq 255 ] || fail "exec failure exit status $rc (want 255)"
case "$err" in *"No such file"*) ;; *) fail "exec failure message: '$err'" ;; esac

if [ $failures -ne 0 ]; then
	echo "closefds: $failures test(s) failed" >&2
	exit 1
fi
echo "closefds: all tests passed"
