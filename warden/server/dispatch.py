"""From a validated request to the container operation, and back to a response.

The table of which states each request accepts lives here, in one place, with
the exact wire error texts; the container implements the operations.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, AsyncIterator

from ..container.base import ACTIVE, STOPPED, Container
from ..container.context import Context
from ..errors import WardenError

ALLOWED_STATES: dict[str, tuple[str, ...]] = {
    "Info": (ACTIVE, STOPPED),
    "Spawn": (ACTIVE,),
    "Run": (ACTIVE,),
    "NetIn": (ACTIVE,),
    "NetOut": (ACTIVE,),
    "CopyIn": (ACTIVE,),
    "CopyOut": (ACTIVE, STOPPED),
    "LimitMemory": (ACTIVE, STOPPED),
    "LimitDisk": (ACTIVE, STOPPED),
    "LimitBandwidth": (ACTIVE, STOPPED),
    "LimitCpu": (ACTIVE, STOPPED),
}

# Requests that only wait: a drain closes their connection at once.
WAITING = frozenset({"Link", "Run", "Stream"})

PORT_RANGE = re.compile(r"^(\d+):(\d+)$")


def check_net_out(request: dict[str, Any]) -> None:
    if request.get("network") is None and request.get("port") is None and request.get("port_range") is None:
        raise WardenError("Please specify network, port, and/or port_range.")
    port_range = request.get("port_range")
    if port_range is not None:
        match = PORT_RANGE.match(port_range)
        if not match:
            raise WardenError(f"invalid request: port_range must be MIN:MAX, got {port_range!r}")
        low, high = int(match[1]), int(match[2])
        if high < low:
            raise WardenError("Port range maximum must be greater than minimum")
        if high > 65535:
            raise WardenError(f"invalid request: port_range maximum {high} is above 65535")


class Dispatcher:
    def __init__(self, ctx: Context, container_class: type[Container]) -> None:
        self.ctx = ctx
        self.container_class = container_class

    def lookup(self, handle: str) -> Container:
        container = self.ctx.registry.get(handle)
        if container is None:
            raise WardenError("unknown handle")
        return container

    async def create(self, request: dict[str, Any]) -> Container:
        return await self.container_class.create(self.ctx, request)

    async def call(self, kind: str, container: Container, request: dict[str, Any]) -> dict[str, Any]:
        """Every request with a handle except Link, Run and Stream, which the
        connection drives itself because they decide when a job is consumed."""
        allowed = ALLOWED_STATES.get(kind)
        if allowed:
            container.require(*allowed)
        if kind == "Stop":
            if request["background"]:
                self.ctx.spawn_background(_quietly(container.stop(kill=request["kill"])))
            else:
                await container.stop(kill=request["kill"])
            return {}
        if kind == "Destroy":
            await container.destroy()
            return {}
        if kind == "Info":
            return await container.info()
        if kind == "Spawn":
            return {"job_id": await container.spawn(request)}
        if kind == "NetIn":
            return await container.net_in(request["host_port"], request["container_port"])
        if kind == "NetOut":
            await container.net_out(request)
            return {}
        if kind == "CopyIn":
            await container.copy_in(request["src_path"], request["dst_path"])
            return {}
        if kind == "CopyOut":
            await container.copy_out(request["src_path"], request["dst_path"], request["owner"])
            return {}
        if kind == "LimitMemory":
            return await container.limit_memory(request["limit_in_bytes"])
        if kind == "LimitDisk":
            fields = {k: v for k, v in request.items() if k != "handle"}
            return await container.limit_disk(fields)
        if kind == "LimitBandwidth":
            return await container.limit_bandwidth(request["rate"], request["burst"])
        if kind == "LimitCpu":
            return await container.limit_cpu(request["limit_in_shares"])
        raise WardenError(f"Unknown request: {kind}")

    async def run(self, container: Container, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        container.require(ACTIVE)
        job_id = await container.spawn(request)
        return job_id, await container.link(job_id)

    def stream(self, container: Container, job_id: int) -> AsyncIterator[dict[str, Any]]:
        return container.stream(job_id)


async def _quietly(coro) -> None:
    try:
        await coro
    except (WardenError, asyncio.CancelledError):
        pass
