"""InsecureContainer's state machine and operations, with the backend scripts faked.

pytest-subprocess (`fp`) stands in for create.sh, stop.sh, destroy.sh and iomux-spawn;
an unregistered command fails the test, so every script call is accounted for.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from warden.config import from_dict
from warden.container.base import SNAPSHOT
from warden.container.context import Context
from warden.container.holder import merge_rlimits
from warden.container.insecure import InsecureContainer
from warden.container.jobs import JobIds
from warden.container.linux.net import check_net_out
from warden.errors import WardenError
from warden.pool import NetworkPool, PortPool, Subnet, UidPool
from warden.protocol import parse_message
from warden.server.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2] / "root" / "insecure"
CREATE_SH = str(ROOT / "create.sh")
DESTROY_SH = str(ROOT / "destroy.sh")
STOPPED_TEXT = "Container state must be one of 'active', current state is 'stopped'"


@pytest.fixture
def make_ctx(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")

    def make(*, subnets: int = 1, uids: int = 1, server: dict | None = None, release_delay: float = 0) -> Context:
        depot = tmp_path / "depot"
        prefix = 32 - (subnets * 4).bit_length() + 1
        cfg = from_dict({
            "server": {"backend": "insecure", "container_depot_path": str(depot), **(server or {})},
            "network": {"pool_network": f"10.254.0.0/{prefix}", "release_delay": release_delay},
            "user": {"pool_start_uid": 10000, "pool_size": uids},
            "port": {"pool_start_port": 61001, "pool_size": 1000},
        })
        depot.mkdir(exist_ok=True)
        ctx = Context(
            config=cfg,
            networks=NetworkPool(cfg.network.pool_network, cfg.network.release_delay),
            ports=PortPool(cfg.port.pool_start_port, cfg.port.pool_size),
            uids=UidPool(cfg.user.pool_start_uid, cfg.user.pool_size, passwd=str(passwd)),
            job_ids=JobIds(depot / ".job-ids"),
        )
        assert len(ctx.networks) == subnets
        return ctx

    return make


def request(kind: str, **payload):
    return parse_message({"type": kind, "payload": payload})


async def call(ctx: Context, req) -> dict:
    """A request through the dispatcher's table, as a connection sends it."""
    return (await Dispatcher(ctx, InsecureContainer).answer(req)).payload


async def create(ctx: Context, **payload) -> InsecureContainer:
    return await InsecureContainer.create(ctx, request("Create", **payload))


def stop_sh(c) -> str:
    return str(c.path / "stop.sh")


def read_snapshot(c) -> dict:
    return json.loads((c.path / SNAPSHOT).read_text())


async def wait_until(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def spin(n: int = 10) -> None:
    """Let the loop run a few iterations (enough for a call_later(0) to fire)."""
    for _ in range(n):
        await asyncio.sleep(0)


# ---- create ----------------------------------------------------------------------------


def test_create_acquires_subnet_and_uid_and_registers(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        assert c.handle == "h"
        assert re.fullmatch(r"[0-9a-v]{11}", c.id)
        assert c.path == ctx.depot / c.id  # the id, never the handle
        assert c.state == "active"
        assert ctx.registry == {"h": c}
        assert c.res.subnet == Subnet(__import__("ipaddress").IPv4Address("10.254.0.0"))
        assert c.res.uid == 10000
        assert len(ctx.networks) == 0 and len(ctx.uids) == 0
        assert c.grace_time == 300  # from the config
        assert ctx.creating == set()
        assert fp.call_count([CREATE_SH, str(c.path)]) == 1

    asyncio.run(main())


def test_create_without_handle_uses_the_id(fp, make_ctx):
    ctx = make_ctx(subnets=2, uids=2)
    fp.register([CREATE_SH, fp.any()], occurrences=2)

    async def main():
        a = await create(ctx)
        b = await create(ctx)
        assert a.handle == a.id and b.handle == b.id
        assert a.id != b.id
        assert set(ctx.registry) == {a.id, b.id}
        assert a.res.subnet != b.res.subnet and a.res.uid != b.res.uid

    asyncio.run(main())


def test_create_grace_time_from_request_overrides_config(fp, make_ctx):
    ctx = make_ctx(subnets=2, uids=2, server={"container_grace_time": None})
    fp.register([CREATE_SH, fp.any()], occurrences=2)

    async def main():
        a = await create(ctx, grace_time=0)
        b = await create(ctx)
        assert a.grace_time == 0  # zero counts as set
        assert b.grace_time is None

    asyncio.run(main())


def test_create_specific_network(fp, make_ctx):
    ctx = make_ctx(subnets=4, uids=4)
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, network="10.254.0.9")
        assert str(c.res.subnet) == "10.254.0.8"
        with pytest.raises(WardenError) as info:
            await create(ctx, network="10.254.0.10")
        assert info.value.message == "Could not acquire network: 10.254.0.10"
        with pytest.raises(WardenError, match=r"^Could not acquire network: 10\.9\.0\.1$"):
            await create(ctx, network="10.9.0.1")
        assert len(ctx.uids) == 3  # the uid was never taken for the failures
        assert list(ctx.registry) == [c.handle]

    asyncio.run(main())


def test_duplicate_handle(fp, make_ctx):
    ctx = make_ctx(subnets=2, uids=2)
    fp.register([CREATE_SH, fp.any()])

    async def main():
        first = await create(ctx, handle="h")
        with pytest.raises(WardenError) as info:
            await create(ctx, handle="h")
        assert info.value.message == "container with handle: h already exists."
        assert ctx.registry == {"h": first}
        assert len(ctx.networks) == 1 and len(ctx.uids) == 1  # nothing taken by the refused create
        assert fp.call_count([CREATE_SH, fp.any()]) == 1

    asyncio.run(main())


def test_duplicate_of_a_handle_being_created(fp, make_ctx):
    ctx = make_ctx()
    ctx.creating.add("h")

    async def main():
        with pytest.raises(WardenError, match=r"^container with handle: h already exists\.$"):
            await create(ctx, handle="h")
        assert len(ctx.networks) == 1

    asyncio.run(main())


def test_failing_create_leaves_nothing_behind(fp, make_ctx):
    ctx = make_ctx()  # one subnet, one uid: a leak would make the retry fail
    fp.register([CREATE_SH, fp.any()], returncode=1, stderr=b"cp: no space left on device\n")
    fp.register([DESTROY_SH, fp.any()])
    fp.register([CREATE_SH, fp.any()])

    async def main():
        with pytest.raises(WardenError) as info:
            await create(ctx, handle="h")
        assert info.value.message == "command exited with failure"
        assert "no space left on device" in info.value.data
        assert ctx.registry == {}
        assert ctx.creating == set()
        assert len(ctx.networks) == 1 and len(ctx.uids) == 1
        assert fp.call_count([DESTROY_SH, fp.any()]) == 1
        failed_path = fp.calls[0][1]
        assert list(fp.calls[1]) == [DESTROY_SH, failed_path]
        assert not (Path(failed_path) / SNAPSHOT).exists()

        c = await create(ctx, handle="h")
        assert str(c.res.subnet) == "10.254.0.0" and c.res.uid == 10000
        assert ctx.registry == {"h": c}

    asyncio.run(main())


def test_failing_create_and_failing_cleanup_still_release(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()], returncode=2, stderr=b"create broke")
    fp.register([DESTROY_SH, fp.any()], returncode=1, stderr=b"destroy broke too")

    async def main():
        with pytest.raises(WardenError) as info:
            await create(ctx)
        assert info.value.message == "command exited with failure"
        assert "create broke" in info.value.data  # the original error, not the cleanup's
        assert ctx.registry == {}
        assert len(ctx.networks) == 1 and len(ctx.uids) == 1

    asyncio.run(main())


def test_uid_exhaustion_releases_the_subnet(fp, make_ctx):
    ctx = make_ctx(subnets=2, uids=1)
    fp.register([CREATE_SH, fp.any()])

    async def main():
        await create(ctx)
        with pytest.raises(WardenError) as info:
            await create(ctx)
        assert info.value.message == "no uid available"
        assert len(ctx.networks) == 1
        assert len(ctx.registry) == 1

    asyncio.run(main())


def test_network_exhaustion(fp, make_ctx):
    ctx = make_ctx(subnets=1, uids=2)
    fp.register([CREATE_SH, fp.any()])

    async def main():
        await create(ctx)
        with pytest.raises(WardenError) as info:
            await create(ctx)
        assert info.value.message == "Could not acquire network"
        assert len(ctx.uids) == 1

    asyncio.run(main())


# ---- stop ----------------------------------------------------------------------------------


def test_stop_is_idempotent(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        assert await call(ctx, request("Stop", handle="h")) == {}
        assert c.state == "stopped"
        assert read_snapshot(c)["state"] == "stopped"
        # Already stopped: no script runs (an unregistered call would fail).
        await call(ctx, request("Stop", handle="h", kill=True))
        await c.stop()
        assert c.state == "stopped"
        assert fp.call_count([stop_sh(c), fp.any()]) == 1
        assert ctx.registry == {"h": c}

    asyncio.run(main())


def test_stop_kill_passes_zero_wait(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx)
        fp.register([stop_sh(c), "-w", "0"])
        await c.stop(kill=True)
        assert fp.call_count([stop_sh(c), "-w", "0"]) == 1
        assert c.state == "stopped"

    asyncio.run(main())


def test_background_stop(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        await call(ctx, request("Stop", handle="h", background=True))
        await wait_until(lambda: fp.call_count([stop_sh(c)]) == 1 and not ctx.background)
        assert c.state == "stopped"

    asyncio.run(main())


def test_failed_stop_still_leaves_the_container_stopped(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx)
        fp.register([stop_sh(c)], returncode=1, stderr=b"kill failed")
        with pytest.raises(WardenError, match="command exited with failure"):
            await c.stop()
        assert c.state == "stopped"  # upstream: set before stop.sh runs, and it sticks
        assert read_snapshot(c)["state"] == "stopped"

    asyncio.run(main())


# ---- states ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind,payload", [
    ("Spawn", {"script": "true"}),
    ("NetIn", {}),
    ("NetOut", {"port": 80}),
    ("CopyIn", {"src_path": "/a", "dst_path": "/b"}),
])
def test_active_only_requests_on_a_stopped_container(fp, make_ctx, kind, payload):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        await c.stop()
        with pytest.raises(WardenError) as info:
            await call(ctx, request(kind, handle="h", **payload))
        assert info.value.message == STOPPED_TEXT

    asyncio.run(main())


def test_spawn_and_run_on_a_stopped_container(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        await c.stop()
        with pytest.raises(WardenError) as info:
            await c.spawn(request("Spawn", handle="h", script="true"))
        assert str(info.value) == STOPPED_TEXT
        with pytest.raises(WardenError) as info:
            await call(ctx, request("Run", handle="h", script="true"))
        assert info.value.message == STOPPED_TEXT
        assert not c.jobs_dir.exists() or not any(c.jobs_dir.iterdir())

    asyncio.run(main())


@pytest.mark.parametrize("kind,payload", [
    ("LimitMemory", {}),
    ("LimitCpu", {}),
    ("LimitDisk", {}),
    ("LimitBandwidth", {"rate": 1, "burst": 1}),
    ("CopyOut", {"src_path": "/a", "dst_path": "/b"}),
])
def test_requests_allowed_when_stopped_pass_the_state_check(fp, make_ctx, kind, payload, tmp_path):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])
    fp.register(["rsync", fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        await c.stop()
        try:
            await call(ctx, request(kind, handle="h", **payload))
        except WardenError as exc:
            # The insecure backend has no limits; what matters is that the state was accepted.
            assert exc.message == "not implemented"

    asyncio.run(main())


def test_info_in_active_and_stopped(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        info = await call(ctx, request("Info", handle="h"))
        assert info == {
            "state": "active",
            "events": [],
            "host_ip": "10.254.0.1",
            "container_ip": "10.254.0.2",
            "container_path": str(c.path),
            "job_ids": [],
        }
        fp.register([stop_sh(c)])
        await c.stop()
        assert (await call(ctx, request("Info", handle="h")))["state"] == "stopped"
        fp.register([DESTROY_SH, fp.any()])
        await c.destroy()
        with pytest.raises(WardenError) as info_err:
            await c.info()
        assert info_err.value.message == "Container state must be one of 'active, stopped', current state is 'destroyed'"

    asyncio.run(main())


def test_unknown_handle(make_ctx):
    d = Dispatcher(make_ctx(), InsecureContainer)
    with pytest.raises(WardenError) as info:
        d.lookup("nope")
    assert info.value.message == "unknown handle"


# ---- destroy -------------------------------------------------------------------------------


def test_destroy_releases_resources_and_unregisters(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        fp.register([DESTROY_SH, str(c.path)])
        assert await call(ctx, request("Destroy", handle="h")) == {}
        assert c.state == "destroyed"
        assert ctx.registry == {}
        assert len(ctx.networks) == 1 and len(ctx.uids) == 1
        assert c.res.subnet is None and c.res.uid is None
        assert not (c.path / SNAPSHOT).exists()
        assert fp.call_count([stop_sh(c)]) == 0  # no job runs: nothing to stop gracefully
        assert c.obituary is not None and c.obituary["state"] == "active"
        assert await c.info_or_obituary() is c.obituary
        await c.destroy()  # already destroyed: no script runs
        assert fp.call_count([DESTROY_SH, fp.any()]) == 1
        # The released subnet and uid are handed out again (release delay 0).
        fp.register([CREATE_SH, fp.any()])
        again = await create(ctx, handle="h")
        assert str(again.res.subnet) == "10.254.0.0" and again.res.uid == 10000

    asyncio.run(main())


def test_destroy_a_stopped_container_does_not_stop_again(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx)
        fp.register([stop_sh(c)])
        await c.stop()
        fp.register([DESTROY_SH, fp.any()])
        await c.destroy()
        assert fp.call_count([stop_sh(c)]) == 1
        assert c.obituary["state"] == "stopped"

    asyncio.run(main())


def test_failing_destroy_keeps_the_container_and_a_retry_works(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([stop_sh(c)])
        fp.register([DESTROY_SH, fp.any()], returncode=1, stderr=b"device busy")
        with pytest.raises(WardenError) as info:
            await c.destroy()
        assert info.value.message == "command exited with failure"
        assert "device busy" in info.value.data
        assert ctx.registry == {"h": c}
        assert c.state == "stopped"
        assert read_snapshot(c)["state"] == "stopped"
        assert len(ctx.networks) == 0 and len(ctx.uids) == 0  # still held
        assert (await c.info())["state"] == "stopped"

        fp.register([DESTROY_SH, fp.any()])
        await c.destroy()
        assert c.state == "destroyed"
        assert ctx.registry == {}
        assert len(ctx.networks) == 1 and len(ctx.uids) == 1
        assert fp.call_count([stop_sh(c)]) == 0  # no job ran: nothing to stop

    asyncio.run(main())


# ---- grace timer ----------------------------------------------------------------------------


def test_grace_timer_destroys_after_last_connection_leaves(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h", grace_time=0)
        fp.register([stop_sh(c)])
        fp.register([DESTROY_SH, fp.any()])
        a, b = object(), object()
        c.register_connection(a)
        c.register_connection(b)
        c.unregister_connection(a)
        assert c._grace_timer is None  # b still references it
        await spin()
        assert ctx.registry == {"h": c}
        c.unregister_connection(b)
        assert c._grace_timer is not None
        await wait_until(lambda: c.state == "destroyed")
        assert ctx.registry == {}
        assert len(ctx.networks) == 1
        assert fp.call_count([DESTROY_SH, fp.any()]) == 1

    asyncio.run(main())


def test_grace_timer_is_cancelled_by_a_new_reference(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h", grace_time=0)
        a, b = object(), object()
        c.register_connection(a)
        c.unregister_connection(a)
        assert c._grace_timer is not None
        c.register_connection(b)
        assert c._grace_timer is None
        await spin()  # a call_later(0) would have fired by now
        assert c.state == "active"
        assert ctx.registry == {"h": c}
        # Any stop/destroy would be an unregistered command and fail the test.
        assert fp.call_count([DESTROY_SH, fp.any()]) == 0

    asyncio.run(main())


def test_grace_timer_uses_the_grace_time(fp, make_ctx):
    ctx = make_ctx(server={"container_grace_time": 300})
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx)
        conn = object()
        c.register_connection(conn)
        c.unregister_connection(conn)
        timer = c._grace_timer
        assert timer is not None
        assert 299 <= timer.when() - asyncio.get_running_loop().time() <= 300
        c.register_connection(conn)
        assert timer.cancelled()

    asyncio.run(main())


def test_grace_time_none_disables_the_timer(fp, make_ctx):
    ctx = make_ctx(server={"container_grace_time": None})
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        conn = object()
        c.register_connection(conn)
        c.unregister_connection(conn)
        c.arm_grace_timer()
        assert c._grace_timer is None
        await spin()
        assert ctx.registry == {"h": c}

    asyncio.run(main())


def test_grace_timer_not_armed_for_a_destroyed_container(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, grace_time=0)
        fp.register([stop_sh(c)])
        fp.register([DESTROY_SH, fp.any()])
        conn = object()
        c.register_connection(conn)
        await c.destroy()
        c.unregister_connection(conn)
        assert c._grace_timer is None

    asyncio.run(main())


def test_failed_destroy_on_grace_expiry_keeps_the_container(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h", grace_time=0)
        fp.register([stop_sh(c)])
        fp.register([DESTROY_SH, fp.any()], returncode=1)
        c.arm_grace_timer()
        await wait_until(lambda: fp.call_count([DESTROY_SH, fp.any()]) == 1 and not ctx.background)
        assert ctx.registry == {"h": c}
        assert c.state == "stopped"

    asyncio.run(main())


# ---- snapshot -----------------------------------------------------------------------------


def test_snapshot_after_create_and_stop_and_deleted_on_destroy(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="hé", grace_time=7)
        snap = read_snapshot(c)
        assert snap["state"] == "active"
        assert snap["grace_time"] == 7
        assert snap["events"] == []
        assert snap["backend"] == "insecure"
        res = snap["resources"]
        assert res["container_id"] == c.id
        assert res["handle"] == "hé"
        assert res["network"] == "10.254.0.0"
        assert res["uid"] == 10000
        assert res["ports"] == [] and res["net_in"] == [] and res["net_out"] == []
        assert list((c.path / "tmp").iterdir()) == []  # the temporary file was renamed away

        fp.register([stop_sh(c)])
        await c.stop()
        assert read_snapshot(c)["state"] == "stopped"
        fp.register([DESTROY_SH, fp.any()])
        await c.destroy()
        assert not (c.path / SNAPSHOT).exists()

    asyncio.run(main())


def test_snapshot_write_is_atomic(fp, make_ctx, monkeypatch):
    import warden.container.base as base

    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx)
        before = (c.path / SNAPSHOT).read_text()

        def half_dump(obj, f):
            f.write('{"state": "stop')
            raise OSError("disk full")

        monkeypatch.setattr(base.json, "dump", half_dump)
        c.state = "stopped"
        with pytest.raises(OSError):
            c.write_snapshot()
        monkeypatch.undo()
        assert (c.path / SNAPSHOT).read_text() == before
        assert json.loads(before)["state"] == "active"

    asyncio.run(main())


def test_net_in_records_the_port_in_the_snapshot(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        result = await call(ctx, request("NetIn", handle="h"))
        assert result == {"host_port": 61001, "container_port": 61001}
        res = read_snapshot(c)["resources"]
        assert res["ports"] == [61001] and res["net_in"] == [[61001, 61001]]
        fp.register([stop_sh(c)])
        fp.register([DESTROY_SH, fp.any()])
        await c.destroy()
        assert ctx.ports.acquire_port() == 61002  # released to the tail
        assert 61001 in [ctx.ports.acquire_port() for _ in range(999)]

    asyncio.run(main())


# ---- jobs -----------------------------------------------------------------------------------


def test_merge_rlimits_without_mutating_the_config(fp, make_ctx):
    ctx = make_ctx(server={"container_rlimits": {"nofile": 8192, "as": 4294967296}})
    fp.register([CREATE_SH, fp.any()])
    config_rlimits = ctx.config.server.container_rlimits

    async def main():
        await create(ctx)
        merged = merge_rlimits(ctx.config.server.container_rlimits, {"nofile": 100, "core": None, "nproc": 5})
        assert merged == {"nofile": 100, "as": 4294967296, "nproc": 5}
        merged["as"] = 1
        assert config_rlimits == {"nofile": 8192, "as": 4294967296}
        assert merge_rlimits(ctx.config.server.container_rlimits, None) == {"nofile": 8192, "as": 4294967296}
        assert merge_rlimits(ctx.config.server.container_rlimits, {}) == {"nofile": 8192, "as": 4294967296}
        parsed = request("Spawn", handle="h", script="x", rlimits={"stack": 1}).rlimits
        assert merge_rlimits(ctx.config.server.container_rlimits, parsed) == {"nofile": 8192, "as": 4294967296, "stack": 1}
        assert merge_rlimits(ctx.config.server.container_rlimits, None) == {"nofile": 8192, "as": 4294967296}

    asyncio.run(main())


def test_job_argv(fp, make_ctx):
    from warden.container.jobs import Job

    ctx = make_ctx(server={"container_rlimits": {"nofile": 8192}, "job_output_limit": 1234})
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx)
        job = Job(1, c.jobs_dir / "1")
        argv = c.job_argv(job, request("Spawn", handle="h", script="x", rlimits={"nproc": 5}))
        assert argv[0] == str(c.path / "bin" / "iomux-spawn")
        assert argv[-3:] == [str(job.dir), "--", "/bin/bash"]
        assert argv[argv.index("-l"):argv.index("-l") + 2] == ["-l", "1234"]
        assert "-d" not in argv
        pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-r"]
        assert pairs == ["nofile=8192", "nproc=5"]
        quiet = Job(2, c.jobs_dir / "2", discard_output=True, log_tag="app")
        argv = c.job_argv(quiet, request("Spawn", handle="h", script="x"))
        assert "-d" in argv and "-l" not in argv
        assert argv[argv.index("-t") + 1] == "warden.app"

    asyncio.run(main())


def test_spawn_writes_the_script_and_registers_the_job(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        spawn = str(c.path / "bin" / "iomux-spawn")
        fp.register([spawn, fp.any()])
        job_id = await c.spawn(request("Spawn", handle="h", script=b"echo \xff"))
        assert job_id >= 1
        assert (c.jobs_dir / str(job_id) / "script").read_bytes() == b"echo \xff"
        assert not (c.jobs_dir / str(job_id) / "meta.json").exists()  # defaults: no meta file
        assert c.job(job_id).id == job_id
        fp.register([spawn, fp.any()])
        tagged = await c.spawn(request("Spawn", handle="h", script="true", discard_output=True, log_tag="t"))
        assert tagged == job_id + 1
        assert json.loads((c.jobs_dir / str(tagged) / "meta.json").read_text()) == {"discard_output": True, "log_tag": "t"}

    asyncio.run(main())


def test_failing_iomux_spawn(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        c = await create(ctx, handle="h")
        fp.register([str(c.path / "bin" / "iomux-spawn"), fp.any()], returncode=1, stderr=b"cannot bind\n")
        with pytest.raises(WardenError) as info:
            await c.spawn(request("Spawn", handle="h", script="true"))
        assert info.value.message == "iomux-spawn failed"
        assert info.value.data == "cannot bind"
        assert c.jobs == {}
        assert list(c.jobs_dir.iterdir()) == []
        with pytest.raises(WardenError, match=r"^no such job$"):
            c.job(1)

    asyncio.run(main())


# ---- NetOut argument checks (dispatch) ---------------------------------------------------------


@pytest.mark.parametrize("payload,message", [
    ({}, "Please specify network, port, and/or port_range."),
    ({"protocol": "UDP", "log": True}, "Please specify network, port, and/or port_range."),
    ({"port_range": "90:80"}, "Port range maximum must be greater than minimum"),
    ({"network": "10.0.0.0/8", "port_range": "2:1"}, "Port range maximum must be greater than minimum"),
])
def test_check_net_out_errors(payload, message):
    with pytest.raises(WardenError) as info:
        check_net_out(request("NetOut", handle="h", **payload))
    assert info.value.message == message


@pytest.mark.parametrize("port_range", ["80", "80-90", "a:b", ":80", "80:", "80:90:100", " 80:90"])
def test_check_net_out_malformed_port_range(port_range):
    with pytest.raises(WardenError) as info:
        check_net_out(request("NetOut", handle="h", port_range=port_range))
    assert info.value.message.startswith("invalid request: port_range")


def test_check_net_out_port_range_above_65535():
    with pytest.raises(WardenError, match=r"^invalid request: port_range maximum 70000"):
        check_net_out(request("NetOut", handle="h", port_range="1:70000"))


@pytest.mark.parametrize("payload", [
    {"port_range": "80:80"},
    {"port_range": "1:65535"},
    {"port": 80},
    {"network": "10.0.0.1"},
    {"network": "10.0.0.1-10.0.0.9"},
])
def test_check_net_out_accepts(payload):
    check_net_out(request("NetOut", handle="h", **payload))


def test_net_out_on_insecure_is_not_implemented(fp, make_ctx):
    ctx = make_ctx()
    fp.register([CREATE_SH, fp.any()])

    async def main():
        await create(ctx, handle="h")
        with pytest.raises(WardenError) as info:
            await call(ctx, request("NetOut", handle="h", port=80))
        assert info.value.message == "not implemented"

    asyncio.run(main())
