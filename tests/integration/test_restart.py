"""Drain (SIGUSR2) and crash (SIGKILL) with jobs still printing: nothing lost."""

from __future__ import annotations

import pytest

from tests.support import wait_for

COUNT = 150
PRINTER = f"for i in $(seq 1 {COUNT}); do echo line$i; echo err$i >&2; sleep 0.01; done; exit 9"
EXPECTED_OUT = b"".join(b"line%d\n" % i for i in range(1, COUNT + 1))
EXPECTED_ERR = b"".join(b"err%d\n" % i for i in range(1, COUNT + 1))


def _prepare(server):
    with server.connect() as wire:
        active = wire.call("Create", handle="active-one", grace_time=600)["handle"]
        stopped = wire.call("Create", handle="stopped-one")["handle"]
        wire.call("Stop", handle=stopped)
        port = wire.call("NetIn", handle=active)["host_port"]
        finished = wire.call("Spawn", handle=active, script="echo finished; exit 3")["job_id"]
        wait_for(lambda: finished not in wire.call("Info", handle=active)["job_ids"], what="job end")
        printing = wire.call("Spawn", handle=active, script=PRINTER)["job_id"]
        before = {h: wire.call("Info", handle=h) for h in (active, stopped)}
    with server.connect() as wire:
        # Read part of the output before the restart: it must be replayed, not lost.
        wire.send("Stream", handle=active, job_id=printing)
        first = wire.recv()["payload"]
        assert first["data"] in (b"line1\n", b"err1\n")
    return active, stopped, port, finished, printing, before


@pytest.mark.parametrize("how", ["drain", "crash"])
def test_restart_loses_nothing(server, how):
    active, stopped, port, finished, printing, before = _prepare(server)
    if how == "drain":
        assert server.drain() == 0
    else:
        server.crash()
    server.restart()
    with server.connect() as wire:
        assert sorted(wire.call("List")["handles"]) == sorted([active, stopped])
        for handle, info in before.items():
            after = wire.call("Info", handle=handle)
            for key in ("state", "host_ip", "container_ip", "container_path"):
                assert after[key] == info[key], key
        chunks, end = wire.stream(active, printing)
        assert end["exit_status"] == 9
        assert b"".join(d for n, d in chunks if n == "stdout") == EXPECTED_OUT
        assert b"".join(d for n, d in chunks if n == "stderr") == EXPECTED_ERR
        done = wire.call("Link", handle=active, job_id=finished)
        assert (done["exit_status"], done["stdout"]) == (3, b"finished\n")
        # Pools go on after what the recovered containers hold.
        new = wire.call("Create")["handle"]
        assert wire.call("Info", handle=new)["host_ip"] not in {i["host_ip"] for i in before.values()}
        assert wire.call("NetIn", handle=active)["host_port"] == port + 1
        assert wire.call("Spawn", handle=active, script="true")["job_id"] > printing


def test_drain_closes_waiting_connections_and_keeps_jobs(server):
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        job = wire.call("Spawn", handle=handle, script="sleep 1; echo survived")["job_id"]
        wire.send("Link", handle=handle, job_id=job)
        server.signal(__import__("signal").SIGUSR2)
        assert wire.is_closed()
    assert server.wait() == 0
    server.restart()
    with server.connect() as wire:
        reply = wire.call("Link", handle=handle, job_id=job)
        assert (reply["exit_status"], reply["stdout"]) == (0, b"survived\n")


def test_grace_timer_is_rearmed_after_restart(server):
    with server.connect() as wire:
        handle = wire.call("Create", grace_time=1)["handle"]
        path = wire.call("Info", handle=handle)["container_path"]
    server.drain()
    server.restart()
    import os

    wait_for(lambda: not os.path.exists(path), what="grace destroy after restart")


def test_broken_containers_are_destroyed_at_start(server):
    import json
    import os

    with server.connect() as wire:
        good = wire.call("Create", handle="good")["handle"]
        corrupt = wire.call("Info", handle=wire.call("Create", handle="corrupt")["handle"])["container_path"]
        missing = wire.call("Info", handle=wire.call("Create", handle="missing")["handle"])["container_path"]
    server.drain()
    with open(os.path.join(corrupt, "snapshot.json"), "w") as f:
        f.write("{not json")
    os.unlink(os.path.join(missing, "snapshot.json"))
    half = server.depot / "1j00000half"
    half.mkdir()
    (half / "snapshot.json").write_text(json.dumps({"state": "born"}))
    server.restart()
    with server.connect() as wire:
        assert wire.call("List")["handles"] == [good]
    assert not os.path.exists(corrupt) and not os.path.exists(missing) and not half.exists()
