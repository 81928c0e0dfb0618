#!/bin/bash
# Tests for iomux-spawn and iomux-link. Exits non-zero if any test fails.
# Every job started here is killed on exit, even when a test fails.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
SPAWN=$HERE/../iomux-spawn
LINK=$HERE/../iomux-link
WORK=$(mktemp -d /tmp/iomux-test.XXXXXX)
failures=0
current=""

cleanup() {
	local dir pid
	for dir in "$WORK"/*/; do
		[ -e "$dir/status" ] && continue # finished: its pids may be reused already
		for pid in $(cat "$dir/child_pid" 2>/dev/null); do kill -KILL -- "-$pid" 2>/dev/null; done
		for pid in $(cat "$dir/pid" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	jobs -p | xargs -r kill -KILL 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap "exit 130" INT TERM

fail() {
	echo "FAIL [$current]: $*" >&2
	failures=$((failures + 1))
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
	[ "$2" == "$3" ] || fail "$1: got '$2', want '$3'"
}

# new_job NAME: creates and prints a fresh job directory.
new_job() {

	mkdir "$WORK/$1" && echo "$WORK/$1"
}

# spawn DIR [OPTIONS] -- CMD...: starts a job, checks the pid line, sets PID and CHILD_PID.
spawn() {
	local dir=$1 line
	shift
	line=$("$SPAWN" "${@:1:$(($# - 0))}" 2>"$dir.err")
	local rc=$?
	PID="" CHILD_PID=""
	if [ $rc -ne 0 ]; then
		fail "iomux-spawn exited $rc: $(cat "$dir.err")"
		return 1
	fi
	if [[ ! $line =~ ^pid=([0-9]+)\ child_pid=([0-9]+)$ ]]; then
		fail "bad pid line '$line'"
		return 1
	fi
	PID=${BASH_REMATCH[1]}
	CHILD_PID=${BASH_REMATCH[2]}
	echo "$PID $CHILD_PID" >>"$WORK/spawned"
}

# run_job DIR [OPTIONS] -- CMD...: spawns and waits for the status file.
run_job() {
	local dir=$1
	shift
	spawn "$dir" "$@" && wait_status "$dir"
}

wait_status() {
	local dir=$1 tries=$((${2:-10} * 50))
	while [ ! -e "$dir/status" ] && [ $tries -gt 0 ]; do
		sleep 0.02
		tries=$((tries - 1))
	done
	[ -e "$dir/status" ] || { fail "no status in $dir"; return 1; }
	# The daemon removes notify.sock right after writing status.
	tries=100
	while [ -e "$dir/notify.sock" ] && [ $tries -gt 0 ]; do sleep 0.02; tries=$((tries - 1)); done
}

hex() { od -An -tx1 -v "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }

process_running() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" | cut -c1)" != Z ]; }

# No process may still have the job directory on its command line.
expect_nothing_running() {
	local dir=$1 pid
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		[ "$pid" = $$ ] && continue
		if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF "$dir"; then
			fail "process $pid still running for $dir"
		fi
	done
}

test_records_and_pid_files() {
	local dir
	dir=$(new_job records)
	run_job "$dir" "$dir" -- sh -c 'printf abc; sleep 0.1; printf de >&2' || return
	expect_eq "output bytes" "$(hex "$dir/output")" "01 00 00 00 03 61 62 63 02 00 00 00 02 64 65"
	expect_eq "status" "$(cat "$dir/status")" "0"
	expect_eq "pid file" "$(cat "$dir/pid")" "$PID"
	expect_eq "child_pid file" "$(cat "$dir/child_pid")" "$CHILD_PID"
	[ -e "$dir/notify.sock" ] && fail "notify.sock left behind"
	[ -e "$dir/status.tmp" ] && fail "status.tmp left behind"
	expect_nothing_running "$dir"
}

test_interleaving() {
	local dir
	dir=$(new_job interleave)
	spawn "$dir" "$dir" -- sh -c 'echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; sleep 0.1; echo d >&2' || return
	timeout 10 "$LINK" "$dir" >"$dir.both" 2>&1
	expect_eq "link exit status" $? 0
	expect_eq "merged order" "$(cat "$dir.both")" $'a\nb\nc\nd'
	timeout 10 "$LINK" "$dir" >"$dir.out" 2>"$dir.errout"
	expect_eq "stdout only" "$(cat "$dir.out")" $'a\nc'
	expect_eq "stderr only" "$(cat "$dir.errout")" $'b\nd'
}

test_exit_status() {
	local dir
	dir=$(new_job exit7)
	run_job "$dir" "$dir" -- sh -c 'exit 7' || return
	expect_eq "status" "$(cat "$dir/status")" "7"
	timeout 10 "$LINK" "$dir"
	expect_eq "link exit status" $? 7

	# A second run in the same directory starts from a clean slate.
	spawn "$dir" "$dir" -- sh -c 'sleep 0.3; echo again' || return
	[ -e "$dir/status" ] && fail "stale status left by the previous run"
	expect_eq "second run output" "$(timeout 10 "$LINK" "$dir")" "again"
	expect_eq "second run status" "$(cat "$dir/status")" "0"
}

test_signal_death() {
	local dir
	dir=$(new_job selfkill)
	run_job "$dir" "$dir" -- sh -c 'kill -KILL $$' || return
	expect_eq "status after SIGKILL" "$(cat "$dir/status")" "255"

	dir=$(new_job groupkill)
	spawn "$dir" "$dir" -- sh -c 'sleep 30 & sleep 30' || return
	sleep 0.1
	kill -TERM -- "-$CHILD_PID"
	wait_status "$dir" 5 || return
	expect_eq "status after SIGTERM to the group" "$(cat "$dir/status")" "255"
	timeout 10 "$LINK" "$dir"
	expect_eq "link exit status" $? 255
	expect_nothing_running "$dir"
}

test_output_limit() {
	local dir start
	dir=$(new_job limit)
	start=$SECONDS
	run_job "$dir" -l 10 "$dir" -- sh -c 'printf 0123456789ABCDEF; sleep 30' || return
	[ $((SECONDS - start)) -lt 10 ] || fail "job not killed at the limit"
	expect_eq "status" "$(cat "$dir/status")" $'255\noutput limit exceeded'
	expect_eq "kept output" "$(timeout 10 "$LINK" "$dir")" "0123456789"
	expect_eq "output file size" "$(stat -c %s "$dir/output")" 15
	expect_nothing_running "$dir"

	dir=$(new_job limit-split)
	run_job "$dir" -l 6 "$dir" -- sh -c 'printf abcd; sleep 0.1; printf efgh >&2; sleep 30' || return
	expect_eq "split records" "$(hex "$dir/output")" "01 00 00 00 04 61 62 63 64 02 00 00 00 02 65 66"
	expect_eq "status" "$(cat "$dir/status")" $'255\noutput limit exceeded'

	dir=$(new_job limit-exact)
	run_job "$dir" -l 5 "$dir" -- sh -c 'printf 12345' || return
	expect_eq "status at exactly the limit" "$(cat "$dir/status")" "0"
	expect_eq "output at exactly the limit" "$(timeout 10 "$LINK" "$dir")" "12345"
}

test_discard() {
	local dir
	dir=$(new_job discard)
	run_job "$dir" -d -l 1 "$dir" -- sh -c 'echo out; echo err >&2; head -c 100000 /dev/zero; exit 3' || return
	expect_eq "output size" "$(stat -c %s "$dir/output")" 0
	expect_eq "status (limit ignored)" "$(cat "$dir/status")" "3"
}

test_rlimits() {
	local dir rc
	dir=$(new_job rlimit)
	run_job "$dir" -r nofile=77 -r core=0 "$dir" -- sh -c 'ulimit -n; ulimit -c' || return
	expect_eq "limits seen by the job" "$(timeout 10 "$LINK" "$dir")" $'77\n0'

	dir=$(new_job rlimit-bad)
	"$SPAWN" -r bogus=1 "$dir" -- true 2>/dev/null
	expect_eq "bad rlimit name" $? 2
	"$SPAWN" -r nofile=-1 "$dir" -- true 2>/dev/null
	expect_eq "bad rlimit value" $? 2
	"$SPAWN" -r nofile "$dir" -- true 2>/dev/null
	expect_eq "rlimit without value" $? 2
	expect_eq "nothing created" "$(ls "$dir")" ""
}

test_exec_failure() {
	local dir err rc
	dir=$(new_job execfail)
	err=$("$SPAWN" "$dir" -- /nonexistent/cmd 2>&1 >"$dir.stdout")
	rc=$?
	expect_eq "exit status" $rc 1
	[[ $err == *"exec /nonexistent/cmd"*"No such file"* ]] || fail "error message '$err'"
	expect_eq "stdout" "$(cat "$dir.stdout")" ""
	[ -e "$dir/status" ] && fail "status written for a job that never started"
	[ -e "$dir/notify.sock" ] && fail "notify.sock left behind"
	sleep 0.1
	expect_nothing_running "$dir"

	dir=$(new_job chdirfail)
	err=$("$SPAWN" -C /nonexistent/dir "$dir" -- true 2>&1)
	expect_eq "chdir failure exit status" $? 1
	[[ $err == *"chdir /nonexistent/dir"* ]] || fail "error message '$err'"
	expect_nothing_running "$dir"
}

test_usage_errors() {
	local dir long
	dir=$(new_job usage)
	"$SPAWN" "$dir" true 2>/dev/null
	expect_eq "missing --" $? 2
	"$SPAWN" "$dir" -- 2>/dev/null
	expect_eq "missing command" $? 2
	"$SPAWN" 2>/dev/null
	expect_eq "no arguments" $? 2
	"$SPAWN" -x "$dir" -- true 2>/dev/null
	expect_eq "unknown option" $? 2
	"$SPAWN" -l 12x "$dir" -- true 2>/dev/null
	expect_eq "bad limit" $? 2
	"$SPAWN" "$dir/missing" -- true 2>/dev/null
	expect_eq "missing JOBDIR" $? 2
	"$SPAWN" -i /nonexistent/input "$dir" -- true 2>/dev/null
	expect_eq "missing stdin file" $? 2
	long=$dir/$(printf 'x%.0s' $(seq 120))
	mkdir "$long"
	"$SPAWN" "$long" -- true 2>"$dir.err"
	expect_eq "JOBDIR too long" $? 2
	grep -q "path longer than" "$dir.err" || fail "too-long message: $(cat "$dir.err")"
	"$LINK" 2>/dev/null
	expect_eq "iomux-link without arguments" $? 255
}

test_child_environment() {
	local dir input
	dir=$(new_job environment)
	input=$WORK/input.txt
	printf 'line one\nline two\n' >"$input"
	exec 7</dev/null
	FOO=bar run_job "$dir" -i "$input" -C /tmp "$dir" -- sh -c \
		'cat; pwd; echo "$FOO"; for fd in 3 4 5 6 7 8 9; do [ -e /proc/$$/fd/$fd ] && echo "fd $fd"; done; trap' || return
	exec 7<&-
	expect_eq "stdin, cwd, env, fds, signals" "$(timeout 10 "$LINK" "$dir")" $'line one\nline two\n/tmp\nbar'
}

test_large_output() {
	local dir
	dir=$(new_job large)
	run_job "$dir" "$dir" -- sh -c 'head -c 1000000 /dev/urandom | tee /dev/stderr' 2>/dev/null || return
	timeout 10 "$LINK" "$dir" >"$dir.out" 2>"$dir.errout"
	expect_eq "stdout bytes" "$(stat -c %s "$dir.out")" 1000000
	cmp -s "$dir.out" "$dir.errout" || fail "stdout and stderr copies differ"
}

test_grandchild_holds_pipes() {
	local dir
	dir=$(new_job grandchild)
	run_job "$dir" "$dir" -- sh -c '(sleep 0.5; echo late) & exit 4' || return
	expect_eq "output" "$(timeout 10 "$LINK" "$dir")" "late"
	expect_eq "status" "$(cat "$dir/status")" "4"

	dir=$(new_job closed-pipes)
	run_job "$dir" "$dir" -- sh -c 'echo early; exec >&- 2>&-; sleep 0.5; exit 5' || return
	expect_eq "status after pipes closed first" "$(cat "$dir/status")" "5"
	expect_eq "output" "$(timeout 10 "$LINK" "$dir")" "early"
}

test_live_readers() {
	local dir i rc
	dir=$(new_job live)
	spawn "$dir" "$dir" -- sh -c 'echo first; while [ ! -e "$0.go" ]; do sleep 0.02; done; echo second >&2; sleep 0.1; echo third' "$dir" || return
	for i in 1 2 3; do
		timeout 20 "$LINK" "$dir" >"$dir.reader$i" 2>&1 &
	done
	for i in $(seq 250); do
		[ "$(cat "$dir.reader1" "$dir.reader2" "$dir.reader3")" == $'first\nfirst\nfirst' ] && break
		sleep 0.02
	done
	expect_eq "output seen while running" "$(cat "$dir.reader1" "$dir.reader2" "$dir.reader3")" $'first\nfirst\nfirst'
	[ -e "$dir/status" ] && fail "status exists while the job runs"
	process_running "$PID" || fail "daemon not running"
	touch "$dir.go"
	for i in 1 2 3; do
		wait %$i
		expect_eq "reader $i exit status" $? 0
		expect_eq "reader $i output" "$(cat "$dir.reader$i")" $'first\nsecond\nthird'
	done
	wait_status "$dir" || return
	expect_nothing_running "$dir"
}

test_spawner_died() {
	local dir msg
	dir=$(new_job spawner-died)
	spawn "$dir" "$dir" -- sh -c 'echo hello; sleep 30' || return
	sleep 0.2
	kill -KILL -- "$PID" "-$CHILD_PID"
	sleep 0.1
	msg=$(timeout 10 "$LINK" "$dir" 2>&1)
	expect_eq "link exit status" $? 255
	expect_eq "link output" "$msg" $'hello\niomux-link: job has no status (spawner died)'
	rm -f "$dir/pid" "$dir/child_pid" # keep cleanup away from possibly reused pids
}

for t in test_records_and_pid_files test_interleaving test_exit_status test_signal_death \
	test_output_limit test_discard test_rlimits test_exec_failure test_usage_errors \
	test_child_environment test_large_output test_grandchild_holds_pipes test_live_readers \
	test_spawner_died; do
	before=$failures current=$t
	$t
	if [ $failures -eq $before ]; then echo "ok   $t"; else echo "FAIL $t"; fi
done

# Every daemon and every member of a job's process group must be gone by now.
current=leftovers
sleep 0.2
leftovers=$(ps -eo pid=,pgid=,stat=,args= |
	awk 'NR == FNR { daemon[$1] = 1; group[$2] = 1; next }
	     ($1 in daemon || $2 in group) && $3 !~ /^Z/' "$WORK/spawned" -)
[ -z "$leftovers" ] || fail "processes left running: $leftovers"

if [ $failures -ne 0 ]; then
	echo "iomux: $failures check(s) failed" >&2
	exit 1
fi
echo "iomux: all tests passed"
