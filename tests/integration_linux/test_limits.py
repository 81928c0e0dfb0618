"""Memory (with OOM), cpu and disk limits through the server, Linux backend."""

from __future__ import annotations

import pytest

from tests.support import wait_for

from ..integration.wire import ServerError

MIB = 1024 * 1024


def test_memory_limit_set_query_and_oom(wire, container):
    assert wire.call("LimitMemory", handle=container)["limit_in_bytes"] > 2**60  # unlimited
    assert wire.call("LimitMemory", handle=container, limit_in_bytes=64 * MIB + 1)["limit_in_bytes"] == 64 * MIB  # page-rounded
    assert wire.call("LimitMemory", handle=container, limit_in_bytes=32 * MIB)["limit_in_bytes"] == 32 * MIB
    assert wire.call("Info", handle=container)["memory_stat"]["hierarchical_memory_limit"] == 32 * MIB
    reply = wire.call("Run", handle=container, script="perl -e '$x = \"x\" x (128 * 1024 * 1024); print length $x'")
    assert reply["exit_status"] != 0
    wait_for(lambda: wire.call("Info", handle=container)["state"] == "stopped", what="stop after OOM")
    assert "out of memory" in wire.call("Info", handle=container)["events"]
    with pytest.raises(ServerError, match="current state is 'stopped'"):
        wire.call("Run", handle=container, script="true")


def test_memory_limit_below_usage_is_refused(wire, container):
    wire.call("Spawn", handle=container, script="perl -e '$x = \"x\" x (40 * 1024 * 1024); sleep 30'")
    wait_for(lambda: wire.call("Info", handle=container)["memory_stat"]["rss"] > 30 * MIB, what="rss")
    with pytest.raises(ServerError) as err:
        wire.call("LimitMemory", handle=container, limit_in_bytes=4096)
    assert err.value.message.startswith("Failed setting memory limit")


def test_cpu_shares_read_back(wire, container):
    assert wire.call("LimitCpu", handle=container, limit_in_shares=1)["limit_in_shares"] == 2
    assert wire.call("LimitCpu", handle=container, limit_in_shares=512)["limit_in_shares"] == 512
    assert wire.call("LimitCpu", handle=container)["limit_in_shares"] == 512
    assert wire.call("Info", handle=container)["cpu_stat"]["usage"] > 0


def test_disk_limit_is_enforced_and_reported(wire, container):
    reply = wire.call("LimitDisk", handle=container, byte_limit=20 * MIB)
    assert reply["byte_limit"] == 20 * MIB and reply["block_limit"] == 20 * 1024
    write = wire.call("Run", handle=container, script="dd if=/dev/zero of=~/big bs=1M count=40 2>&1; sync")
    assert b"Disk quota exceeded" in write["stdout"]
    used = wire.call("Info", handle=container)["disk_stat"]["bytes_used"]
    assert 15 * MIB < used <= 21 * MIB
    wire.call("LimitDisk", handle=container, byte_limit=100 * MIB)
    more = wire.call("Run", handle=container, script="dd if=/dev/zero of=~/more bs=1M count=30 2>&1")
    assert more["exit_status"] == 0
    assert wire.call("LimitDisk", handle=container)["byte_limit"] == 100 * MIB


def test_job_output_does_not_count_against_the_memory_limit(make_linux_server):
    """The container's wshd writes its jobs' output, so the output's pages are
    charged to the container: on a tmpfs they could not be reclaimed and a
    chatty job would get its container killed. Output is kept on disk instead."""
    server = make_linux_server(server={"job_output_limit": 256 * MIB})
    with server.connect() as wire:
        handle = wire.call("Create")["handle"]
        try:
            wire.call("LimitMemory", handle=handle, limit_in_bytes=32 * MIB)
            job = wire.call("Spawn", handle=handle, script="head -c 100M /dev/zero; echo done >&2")["job_id"]
            chunks, end = wire.stream(handle, job)
            assert end["exit_status"] == 0
            assert sum(len(d) for n, d in chunks if n == "stdout") == 100 * MIB
            assert b"".join(d for n, d in chunks if n == "stderr") == b"done\n"
            info = wire.call("Info", handle=handle)
            assert info["state"] == "active" and "out of memory" not in info["events"]
        finally:
            wire.call("Destroy", handle=handle)
