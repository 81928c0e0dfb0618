"""Clients for the warden server: `Client` (blocking) and `AsyncClient` (asyncio).

    with Client("/tmp/warden.sock") as warden:
        handle = warden.create()
        job = warden.spawn(handle, "echo hi")
        for chunk in warden.stream(handle, job):
            print(chunk.name, chunk.data)
"""

from .aio import AsyncClient
from .errors import ConnectError, ConnectionClosed, ProtocolError, ServerError, WardenError
from .names import message_type, snake_case
from .results import Chunk, JobResult, StreamEnd
from .streams import AsyncStream, Stream
from .sync import DEFAULT_SOCKET_PATH, Client

__all__ = [
    "DEFAULT_SOCKET_PATH",
    "AsyncClient",
    "AsyncStream",
    "Chunk",
    "Client",
    "ConnectError",
    "ConnectionClosed",
    "JobResult",
    "ProtocolError",
    "ServerError",
    "Stream",
    "StreamEnd",
    "WardenError",
    "message_type",
    "snake_case",
]
