"""Iterating a Stream response: data chunks first, then the terminating frame.

Iteration yields `Chunk`s and stops at the terminating frame, which is kept as `result`.
A stream left unfinished still has frames in flight that would be mistaken for later
responses, so closing it early closes the connection too (the server does not consume
a job whose streaming client went away, so nothing is lost).
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

from .errors import WardenError
from .results import Chunk, JobResult, StreamEnd, is_stream_end


class _Receiver(Protocol):
    def receive(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class _AsyncReceiver(Protocol):
    async def receive(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


_Client = TypeVar("_Client")


class _StreamState(Generic[_Client]):
    """What both stream flavours track: their client, the end frame, or that the stream failed."""

    def __init__(self, client: _Client) -> None:
        self._client = client
        self._end: StreamEnd | None = None
        self._failed = False

    @property
    def finished(self) -> bool:
        return self._end is not None or self._failed

    @property
    def result(self) -> StreamEnd:
        """The terminating frame; only available once iteration has finished."""
        if self._end is None:
            raise RuntimeError("the stream has not reached its terminating frame")
        return self._end

    def _accept(self, payload: dict[str, Any]) -> Chunk | None:
        if is_stream_end(payload):
            self._end = StreamEnd.from_payload(payload)
            return None
        return Chunk(name=payload.get("name", ""), data=payload.get("data", b""))


def _collect(chunks: list[Chunk], end: StreamEnd) -> JobResult:
    def joined(name: str) -> bytes:
        return b"".join(c.data for c in chunks if c.name == name)

    return JobResult(end.exit_status, joined("stdout"), joined("stderr"), end.info)


class Stream(_StreamState[_Receiver]):
    """The frames of one Stream request on a blocking `Client`."""

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Chunk:
        if self.finished:
            raise StopIteration
        try:
            chunk = self._accept(self._client.receive())
        except WardenError:
            self._failed = True
            raise
        if chunk is None:
            raise StopIteration
        return chunk

    def collect(self) -> JobResult:
        """Read to the end and return the output joined per stream, like Link would."""
        chunks = list(self)
        return _collect(chunks, self.result)

    def close(self) -> None:
        """Abandon an unfinished stream (drops the connection); a no-op once finished."""
        if not self.finished:
            self._failed = True
            self._client.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStream(_StreamState[_AsyncReceiver]):
    """The frames of one Stream request on an `AsyncClient`."""

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Chunk:
        if self.finished:
            raise StopAsyncIteration
        try:
            chunk = self._accept(await self._client.receive())
        except WardenError:
            self._failed = True
            raise
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def collect(self) -> JobResult:
        """Read to the end and return the output joined per stream, like Link would."""
        chunks = [chunk async for chunk in self]
        return _collect(chunks, self.result)

    async def aclose(self) -> None:
        """Abandon an unfinished stream (drops the connection); a no-op once finished."""
        if not self.finished:
            self._failed = True
            await self._client.close()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
