"""A request passes through each module at most once on its way in.

The trace records, at every call into warden's code, the modules on the stack
(outermost first, repeats of one module in a row counted once); a module that
appears twice in one stack means the request went down into another module
and came back up to an earlier one, the shape the split of the backend removed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from warden.config import from_dict
from warden.container.context import Context
from warden.container.insecure import InsecureContainer
from warden.container.jobs import JobIds
from warden.container.linux import LinuxContainer
from warden.container.resources import ACTIVE, Resources
from warden.pool import NetworkPool, PortPool, UidPool
from warden.protocol import parse_message
from warden.server.dispatch import Dispatcher

ROOT = Path(__file__).resolve().parents[2]


def _stack(frame: FrameType | None) -> list[str]:
    modules: list[str] = []
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("warden.") and (not modules or modules[-1] != name):
            modules.append(name)
        frame = frame.f_back
    return modules[::-1]


class Trace:
    """Every distinct stack of warden modules seen while the trace runs."""

    def __init__(self) -> None:
        self.stacks: set[tuple[str, ...]] = set()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_globals.get("__name__", "").startswith("warden."):
            self.stacks.add(tuple(_stack(frame)))

    def revisits(self) -> list[tuple[str, ...]]:
        return [s for s in self.stacks if len(set(s)) != len(s)]

    def modules(self) -> set[str]:
        return {m for s in self.stacks for m in s}


def _ctx(tmp_path: Path, backend: str) -> Context:
    depot = tmp_path / "depot"
    depot.mkdir()
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    cfg = from_dict({"server": {"backend": backend, "container_depot_path": str(depot)},
                     "network": {"pool_network": "10.254.0.0/30"}})
    return Context(config=cfg, networks=NetworkPool(cfg.network.pool_network, 0), ports=PortPool(61001, 10),
                   uids=UidPool(10000, 1, passwd=str(tmp_path / "passwd")), job_ids=JobIds(depot / ".job-ids"))


def _active(tmp_path: Path, cls: type[InsecureContainer] | type[LinuxContainer]) -> tuple[Context, Any]:
    """An active container `h` in a fresh depot, registered as a server would have it."""
    ctx = _ctx(tmp_path, cls.backend)
    path = ctx.depot / "c1"
    (path / "jobs").mkdir(parents=True)
    container = cls(ctx, Resources("c1", "h"), path, None)
    container.state = ACTIVE
    ctx.registry["h"] = container
    return ctx, container


def _traced(coro: Any) -> tuple[Any, Trace]:
    trace = Trace()

    async def main() -> Any:
        sys.setprofile(trace)
        try:
            return await coro
        finally:
            sys.setprofile(None)

    return asyncio.run(main()), trace


def test_net_out_on_linux(fp, tmp_path):
    ctx, container = _active(tmp_path, LinuxContainer)
    path = container.path
    fp.register([str(path / "net.sh"), "out"])
    request = parse_message({"type": "NetOut", "payload": {"handle": "h", "port": 80}})
    answer, trace = _traced(Dispatcher(ctx, LinuxContainer).answer(request))
    assert answer.payload == {}
    assert container.res.net_out[0]["PORTS"] == "80"
    assert not trace.revisits(), trace.revisits()
    assert {"warden.server.dispatch", "warden.container.linux.container", "warden.container.linux.net",
            "warden.container.linux.shell", "warden.scripts"} <= trace.modules()


def test_run_on_insecure(fp, tmp_path):
    ctx, container = _active(tmp_path, InsecureContainer)
    path = container.path

    def finish(process: Any) -> None:
        (path / "jobs" / "1" / "status").write_text("3\n")  # what the holder writes at the end

    fp.register([str(path / "bin" / "iomux-spawn"), fp.any()], callback=finish)
    request = parse_message({"type": "Run", "payload": {"handle": "h", "script": "exit 3"}})
    answer, trace = _traced(Dispatcher(ctx, InsecureContainer).answer(request))
    assert answer.payload["exit_status"] == 3
    assert not trace.revisits(), trace.revisits()
    assert {"warden.server.dispatch", "warden.container.base", "warden.container.holder",
            "warden.scripts", "warden.container.jobs"} <= trace.modules()


def test_run_on_linux(monkeypatch, tmp_path):
    from warden.container.linux import wshd

    ctx, container = _active(tmp_path, LinuxContainer)
    path = container.path
    asked: list[dict[str, Any]] = []

    async def fake_spawn_job(socket_path: str, job_id: int, **kwargs: Any) -> int:
        """wshd takes the job and, here, finishes it at once."""
        asked.append(kwargs)
        (path / "jobs" / str(job_id) / "status").write_text("4\n")
        return 1234

    monkeypatch.setattr(wshd, "spawn_job", fake_spawn_job)
    request = parse_message({"type": "Run", "payload": {"handle": "h", "script": "exit 4", "privileged": True}})
    answer, trace = _traced(Dispatcher(ctx, LinuxContainer).answer(request))
    assert answer.payload["exit_status"] == 4
    assert asked[0]["user"] == "root" and "output_fd" in asked[0]
    assert not trace.revisits(), trace.revisits()
    assert {"warden.server.dispatch", "warden.container.base", "warden.container.linux.container",
            "warden.container.linux.jobs", "warden.container.jobs"} <= trace.modules()
