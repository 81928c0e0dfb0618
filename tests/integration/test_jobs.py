"""Jobs: Spawn, Link, Run, Stream, limits on output, rlimits, stop."""

from __future__ import annotations

import threading

import pytest

from tests.support import wait_for

from .wire import ServerError


@pytest.fixture
def handle(wire):
    return wire.call("Create")["handle"]


def test_run_returns_status_and_output(wire, handle):
    reply = wire.call("Run", handle=handle, script="echo out; echo err >&2; exit 3")
    assert (reply["exit_status"], reply["stdout"], reply["stderr"]) == (3, b"out\n", b"err\n")
    assert reply["info"]["state"] == "active"


def test_script_runs_in_the_container_directory_with_a_clean_environment(wire, handle):
    reply = wire.call("Run", handle=handle, script="pwd; echo $LANG; env | grep -c WARDEN_TEST_SECRET || true")
    lines = reply["stdout"].decode().split()
    assert lines[0].endswith("/root")
    assert lines[1]  # LANG is always set
    assert lines[2] == "0"


def test_binary_script_and_output(wire, handle):
    reply = wire.call("Run", handle=handle, script=b"printf '\\xff\\x00\\x80'")
    assert reply["stdout"] == b"\xff\x00\x80"


def test_link_then_no_such_job(wire, handle):
    job = wire.call("Spawn", handle=handle, script="echo linked")["job_id"]
    assert wire.call("Link", handle=handle, job_id=job)["stdout"] == b"linked\n"
    with pytest.raises(ServerError, match="no such job"):
        wire.call("Link", handle=handle, job_id=job)
    with pytest.raises(ServerError, match="no such job"):
        wire.call("Stream", handle=handle, job_id=job)


def test_job_ids_are_unique_and_listed_while_running(wire, handle):
    first = wire.call("Spawn", handle=handle, script="sleep 30")["job_id"]
    second = wire.call("Spawn", handle=handle, script="true")["job_id"]
    assert second > first
    wait_for(lambda: wire.call("Info", handle=handle)["job_ids"] == [first], what="job_ids")


def test_concurrent_link_and_stream_get_the_full_result(server, wire, handle):
    script = "for i in $(seq 1 20); do echo out$i; echo err$i >&2; sleep 0.01; done; exit 7"
    job = wire.call("Spawn", handle=handle, script=script)["job_id"]
    results = {}

    def link(name):
        with server.connect() as other:
            results[name] = other.call("Link", handle=handle, job_id=job)

    def stream():
        with server.connect() as other:
            results["stream"] = other.stream(handle, job)

    threads = [threading.Thread(target=link, args=(n,)) for n in ("a", "b")] + [threading.Thread(target=stream)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    expected_out = b"".join(b"out%d\n" % i for i in range(1, 21))
    expected_err = b"".join(b"err%d\n" % i for i in range(1, 21))
    for name in ("a", "b"):
        assert results[name]["exit_status"] == 7
        assert results[name]["stdout"] == expected_out and results[name]["stderr"] == expected_err
    chunks, end = results["stream"]
    assert end["exit_status"] == 7 and end["info"]["state"] == "active"
    assert b"".join(d for n, d in chunks if n == "stdout") == expected_out
    assert b"".join(d for n, d in chunks if n == "stderr") == expected_err
    assert all(d for _, d in chunks), "no empty data frames"


def test_stream_keeps_the_order_of_output(wire, handle):
    script = "for i in 1 2 3; do echo o$i; sleep 0.05; echo e$i >&2; sleep 0.05; done"
    job = wire.call("Spawn", handle=handle, script=script)["job_id"]
    chunks, end = wire.stream(handle, job)
    text = [(n, d) for n, d in chunks]
    assert text == [("stdout", b"o1\n"), ("stderr", b"e1\n"), ("stdout", b"o2\n"),
                    ("stderr", b"e2\n"), ("stdout", b"o3\n"), ("stderr", b"e3\n")]
    assert end["exit_status"] == 0


# Megabyte writes fill the job's pipe, so its holder keeps records of up to a
# MiB, which Stream sends from the output file by sendfile; the small stderr
# lines between them are read and joined as usual.
BIG_OUTPUT = r"""
import hashlib, os, sys
for i in range(6):
    block = hashlib.sha256(str(i).encode()).digest() * (1 << 15)
    os.write(1, block)
    os.write(2, b"after block %d\n" % i)
"""


def expected_big_output() -> tuple[bytes, bytes]:
    import hashlib
    out = b"".join(hashlib.sha256(str(i).encode()).digest() * (1 << 15) for i in range(6))
    err = b"".join(b"after block %d\n" % i for i in range(6))
    return out, err


@pytest.mark.parametrize("finished_first", [False, True], ids=["live", "replayed"])
def test_stream_of_large_output_is_whole_and_in_order(wire, handle, finished_first):
    script = f"python3 - <<'PY'\n{BIG_OUTPUT}\nPY\n"
    job = wire.call("Spawn", handle=handle, script=script)["job_id"]
    if finished_first:
        wait_for(lambda: wire.call("Info", handle=handle)["job_ids"] == [], what="job end")
    chunks, end = wire.stream(handle, job)
    out, err = expected_big_output()
    assert end["exit_status"] == 0
    assert b"".join(d for n, d in chunks if n == "stdout") == out
    assert b"".join(d for n, d in chunks if n == "stderr") == err
    # Each stderr line comes after the block written before it (the two pipes
    # are read stdout first; how much later is up to the pipes' buffering).
    seen_out = 0
    for name, data in chunks:
        if name == "stdout":
            seen_out += len(data)
        else:
            block = int(data.split()[2])
            assert seen_out >= (block + 1) * len(out) // 6, (block, seen_out)


@pytest.mark.parametrize("how", ["Link", "Run"])
def test_link_and_run_of_large_output_are_whole(wire, handle, how):
    """Past 1 MiB, Link and Run send the output from its file piece by piece;
    the answer is the same frame as for a small output."""
    script = f"python3 - <<'PY'\n{BIG_OUTPUT}\nPY\nexit 4\n"
    if how == "Link":
        job = wire.call("Spawn", handle=handle, script=script)["job_id"]
        reply = wire.call("Link", handle=handle, job_id=job)
    else:
        reply = wire.call("Run", handle=handle, script=script)
    out, err = expected_big_output()
    assert (reply["exit_status"], reply["stdout"], reply["stderr"]) == (4, out, err)
    assert reply["info"]["state"] == "active"
    assert wire.call("Echo", message="next")["message"] == "next"  # the stream is in step


def test_stream_of_a_finished_job_replays_everything(wire, handle):
    job = wire.call("Spawn", handle=handle, script="echo a; echo b >&2; exit 4")["job_id"]
    wait_for(lambda: wire.call("Info", handle=handle)["job_ids"] == [], what="job end")
    chunks, end = wire.stream(handle, job)
    assert chunks == [("stdout", b"a\n"), ("stderr", b"b\n")]
    assert end["exit_status"] == 4


def test_a_client_that_leaves_a_link_does_not_consume_the_job(server, wire, handle):
    job = wire.call("Spawn", handle=handle, script="sleep 0.5; echo kept")["job_id"]
    leaving = server.connect()
    leaving.send("Link", handle=handle, job_id=job)
    leaving.close()
    streaming = server.connect()
    streaming.send("Stream", handle=handle, job_id=job)
    streaming.close()
    assert wire.call("Link", handle=handle, job_id=job)["stdout"] == b"kept\n"


def test_output_limit_kills_the_job(make_server):
    server = make_server(server={"job_output_limit": 4096})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        reply = wire.call("Run", handle=handle, script="while true; do echo 0123456789; done")
        assert reply["exit_status"] == 255
        assert len(reply["stdout"]) + len(reply["stderr"]) <= 4096
        assert reply["stdout"].startswith(b"0123456789\n")
        assert "command exceeded maximum output" in reply["info"]["events"]


def test_discard_output_keeps_nothing_and_never_hits_the_limit(make_server):
    server = make_server(server={"job_output_limit": 1024})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        reply = wire.call("Run", handle=handle, discard_output=True, script="head -c 100000 /dev/zero; exit 5")
        assert (reply["exit_status"], reply["stdout"], reply["stderr"]) == (5, b"", b"")
        assert reply["info"]["events"] == []


def test_rlimits_apply_to_one_job_only(make_server):
    server = make_server(server={"container_rlimits": {"nofile": 256}})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        assert wire.call("Run", handle=handle, script="ulimit -n", rlimits={"nofile": 100})["stdout"] == b"100\n"
        assert wire.call("Run", handle=handle, script="ulimit -n")["stdout"] == b"256\n"


def test_a_job_killed_by_a_signal_exits_255(wire, handle):
    assert wire.call("Run", handle=handle, script="kill -9 $$")["exit_status"] == 255


def test_stop_lets_jobs_handle_term(wire, handle):
    job = wire.call("Spawn", handle=handle, script="trap 'exit 37' TERM; echo ready; sleep 100 & wait")["job_id"]
    wire.send("Stream", handle=handle, job_id=job)
    assert wire.recv()["payload"]["data"] == b"ready\n"
    with wire.__class__(wire.sock.getpeername()) as other:
        assert other.call("Stop", handle=handle) == {}
    end = wire.recv()["payload"]
    assert end["exit_status"] == 37
    assert end["info"]["state"] == "stopped"


def test_stop_kill_ends_jobs_at_once(wire, handle):
    job = wire.call("Spawn", handle=handle, script="trap '' TERM; sleep 100")["job_id"]
    wire.call("Stop", handle=handle, kill=True)
    assert wire.call("Link", handle=handle, job_id=job)["exit_status"] == 255


def test_link_on_a_destroyed_container_gets_the_obituary(server, wire, handle):
    job = wire.call("Spawn", handle=handle, script="sleep 100")["job_id"]
    wire.send("Link", handle=handle, job_id=job)
    with server.connect() as other:
        other.call("Destroy", handle=handle)
    reply = wire.recv()
    assert reply["type"] == "Link"
    assert reply["payload"]["exit_status"] == 255
    # Destroy stops the container first: the job ends while it is stopped.
    assert reply["payload"]["info"]["state"] in ("active", "stopped")
    assert reply["payload"]["info"]["container_path"]


def test_many_jobs_at_once(wire, handle):
    jobs = [wire.call("Spawn", handle=handle, script=f"echo {i}")["job_id"] for i in range(30)]
    for i, job in enumerate(jobs):
        assert wire.call("Link", handle=handle, job_id=job)["stdout"] == f"{i}\n".encode()


def test_script_file_is_readable_by_its_owner_only(wire, handle, server):
    """A script may hold secrets: 0600 like the output (was 0644, issue 11)."""
    job = wire.call("Spawn", handle=handle, script="echo secret-token")["job_id"]
    script = next(server.depot.glob(f"*/jobs/{job}/script"))
    assert script.stat().st_mode & 0o777 == 0o600
    assert script.read_bytes() == b"echo secret-token"
    assert wire.call("Link", handle=handle, job_id=job)["stdout"] == b"secret-token\n"
