"""From a typed request to its answer: one table of every request type.

Each entry of `ROUTES` says which container states the request is allowed in
(with the exact wire error text when it is not), whether it only waits for a
job, and the handler that answers it. The connection looks a request up here
once and sends what the handler returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..container.base import ACTIVE, STOPPED, Container
from ..container.context import Context
from ..errors import WardenError
from ..protocol import Request
from ..protocol import requests as rq


@dataclass
class Answer:
    """What goes back for one request: one response frame, or (Stream) data
    frames as they come and then the last one. `consumed` runs once the whole
    answer was sent: a job whose result reached the client is gone for good."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    frames: AsyncIterator[dict[str, Any]] | None = None
    consumed: Callable[[], None] | None = None


@dataclass
class Call:
    """One request on its way to the handler."""

    ctx: Context
    container_class: type[Container]
    request: Any
    container: Container  # for requests without a handle: unset
    reference: Callable[[Container], None]  # the connection now uses this container


Handler = Callable[[Call], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    states: tuple[str, ...] = ()  # the container states it is allowed in; () for any
    has_handle: bool = True       # names a container by `handle`
    waiting: bool = False         # only waits for a job: a drain closes it at once


# ---- handlers: requests without a container ----------------------------------------


async def _ping(call: Call) -> Answer:
    return Answer("Ping")


async def _echo(call: Call) -> Answer:
    return Answer("Echo", {"message": call.request.message})


async def _list(call: Call) -> Answer:
    return Answer("List", {"handles": list(call.ctx.registry)})


async def _create(call: Call) -> Answer:
    container = await call.container_class.create(call.ctx, call.request)
    call.reference(container)
    return Answer("Create", {"handle": container.handle})


# ---- handlers: lifecycle and info --------------------------------------------------


async def _stop(call: Call) -> Answer:
    stop = call.container.stop(kill=call.request.kill)
    if call.request.background:
        call.ctx.spawn_background(_quietly(stop))
    else:
        await stop
    return Answer("Stop")


async def _destroy(call: Call) -> Answer:
    await call.container.destroy()
    return Answer("Destroy")


async def _info(call: Call) -> Answer:
    return Answer("Info", await call.container.info())


# ---- handlers: jobs ----------------------------------------------------------------


async def _spawn(call: Call) -> Answer:
    return Answer("Spawn", {"job_id": await call.container.spawn(call.request)})


def _forget(container: Container, job_id: int) -> Callable[[], None]:
    return lambda: container.forget_job(job_id)


async def _link(call: Call) -> Answer:
    job = call.container.job(call.request.job_id)
    result = await call.container.link(job.id)
    return Answer("Link", result, consumed=_forget(call.container, job.id))


async def _run(call: Call) -> Answer:
    job_id, result = await call.container.run(call.request)
    return Answer("Run", result, consumed=_forget(call.container, job_id))


async def _stream(call: Call) -> Answer:
    job = call.container.job(call.request.job_id)
    return Answer("Stream", frames=call.container.stream(job.id), consumed=_forget(call.container, job.id))


# ---- handlers: network, files, limits ---------------------------------------------------


async def _net_in(call: Call) -> Answer:
    return Answer("NetIn", await call.container.net_in(call.request))


async def _net_out(call: Call) -> Answer:
    await call.container.net_out(call.request)
    return Answer("NetOut")


async def _copy_in(call: Call) -> Answer:
    await call.container.copy_in(call.request)
    return Answer("CopyIn")


async def _copy_out(call: Call) -> Answer:
    await call.container.copy_out(call.request)
    return Answer("CopyOut")


async def _limit_memory(call: Call) -> Answer:
    return Answer("LimitMemory", await call.container.limit_memory(call.request))


async def _limit_disk(call: Call) -> Answer:
    return Answer("LimitDisk", await call.container.limit_disk(call.request))


async def _limit_bandwidth(call: Call) -> Answer:
    return Answer("LimitBandwidth", await call.container.limit_bandwidth(call.request))


async def _limit_cpu(call: Call) -> Answer:
    return Answer("LimitCpu", await call.container.limit_cpu(call.request))


LIVE = (ACTIVE,)
KEPT = (ACTIVE, STOPPED)

ROUTES: dict[str, Route] = {
    "Ping": Route(_ping, has_handle=False),
    "Echo": Route(_echo, has_handle=False),
    "List": Route(_list, has_handle=False),
    "Create": Route(_create, has_handle=False),
    "Stop": Route(_stop, KEPT),
    "Destroy": Route(_destroy),
    "Info": Route(_info, KEPT),
    "Spawn": Route(_spawn, LIVE),
    "Link": Route(_link, waiting=True),
    "Run": Route(_run, LIVE, waiting=True),
    "Stream": Route(_stream, waiting=True),
    "NetIn": Route(_net_in, LIVE),
    "NetOut": Route(_net_out, LIVE),
    "CopyIn": Route(_copy_in, LIVE),
    "CopyOut": Route(_copy_out, KEPT),
    "LimitMemory": Route(_limit_memory, KEPT),
    "LimitDisk": Route(_limit_disk, KEPT),
    "LimitBandwidth": Route(_limit_bandwidth, KEPT),
    "LimitCpu": Route(_limit_cpu, KEPT),
}

assert set(ROUTES) == set(rq.REQUESTS), "every request type needs a route"


class Dispatcher:
    def __init__(self, ctx: Context, container_class: type[Container]) -> None:
        self.ctx = ctx
        self.container_class = container_class

    def lookup(self, handle: str) -> Container:
        container = self.ctx.registry.get(handle)
        if container is None:
            raise WardenError("unknown handle")
        return container

    async def answer(self, request: Request, reference: Callable[[Container], None] = lambda c: None) -> Answer:
        route = ROUTES[request.KIND]
        container: Any = None
        if route.has_handle:
            # has_handle: the request's class has `handle: str` (not every member of the union has)
            container = self.lookup(request.handle)  # type: ignore[union-attr, arg-type]
            reference(container)
            if route.states:
                container.require(*route.states)
        return await route.handler(Call(self.ctx, self.container_class, request, container, reference))


async def _quietly(coro: Coroutine[Any, Any, None]) -> None:
    try:
        await coro
    except (WardenError, asyncio.CancelledError):
        pass
