"""One client connection: frames in, requests strictly in order, frames out.

A reader task decodes frames into a queue; a worker task answers them one at a
time, so responses come back in request order while other connections run
concurrently. Undecodable bytes or an oversized frame get one Error and the
connection closes; anything else that is wrong gets an Error and we go on.

The queue between them is bounded (in frames and in bytes): when a client
pipelines faster than it reads the answers, the reader stops reading and the
client's writes block in its kernel buffer. Memory per connection is bounded by
that, not by how much the client sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from ..container.base import Container
from ..container.jobs import FileSpan, StreamBytes, close_result
from ..errors import WardenError
from ..protocol import (
    FrameReader,
    FrameRefused,
    InvalidRequest,
    MalformedStream,
    encode_error,
    encode_response,
    encode_response_parts,
    encode_stream_data,
    parse_message,
)
from .dispatch import ROUTES, Answer

if TYPE_CHECKING:
    from .app import Server

log = logging.getLogger("warden.connection")

_END = object()
READ_SIZE = 256 * 1024
# Unanswered requests a connection may have queued before reading pauses: enough
# for any pipelining client to keep the worker busy, and at most this many bytes
# of frames (plus the one that crossed the line).
QUEUE_FRAMES = 256
QUEUE_BYTES = 1 << 20


class RequestQueue:
    """Frames read but not yet answered, bounded in count and in bytes.

    `put` waits while the queue is full (backpressure: reading pauses, nothing
    is dropped); `put_nowait` is for the end-of-stream markers, which must get
    in however full it is."""

    def __init__(self, max_frames: int = QUEUE_FRAMES, max_bytes: int = QUEUE_BYTES) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return len(self._items) >= self.max_frames or self._bytes >= self.max_bytes

    def close(self) -> None:
        """Nobody will take frames any more: a waiting reader must not wait forever."""
        self.closed = True
        self._writable.set()

    async def put(self, item: Any, size: int) -> None:
        while self.full() and not self.closed:
            self._writable.clear()
            await self._writable.wait()
        self.put_nowait(item, size)

    def put_nowait(self, item: Any, size: int = 0) -> None:
        self._items.append((item, size))
        self._bytes += size
        self._readable.set()

    async def get(self) -> Any:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        item, size = self._items.popleft()
        self._bytes -= size
        if not self.full():
            self._writable.set()
        return item


class Connection:
    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 peer: dict[str, int] | None = None) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = peer  # the client's pid, uid and gid (SO_PEERCRED), for the log
        self.frames = FrameReader(server.config.server.max_request_size)
        self.queue = RequestQueue()
        self.current: str | None = None  # the type of the request being answered
        self.containers: set[Container] = set()
        self.closing = False
        self._worker: asyncio.Task[None] | None = None
        self._current_task: asyncio.Task[Any] | None = None

    # ---- lifecycle --------------------------------------------------------------

    async def serve(self) -> None:
        for container in list(self.server.ctx.registry.values()):
            self.reference(container)
        self._worker = asyncio.create_task(self._work())
        try:
            await self._read()
        finally:
            await self._finish()

    async def _read(self) -> None:
        while not self.closing:
            try:
                data = await self.reader.read(READ_SIZE)
            except (ConnectionError, OSError):
                break
            if not data:
                break
            frames = self.frames.feed(data)
            for frame, size in zip(frames, self.frames.sizes, strict=True):
                await self.queue.put(frame, size)
            if frames and isinstance(frames[-1], MalformedStream):
                break
        self.queue.put_nowait(_END)
        # The client is gone or the stream is broken: a request that only waits
        # for a job must not hold the connection (nor consume the job).
        if self._waiting() and self._current_task is not None:
            self._current_task.cancel()

    async def _finish(self) -> None:
        if self._worker is not None:
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self.close()
        for container in self.containers:
            container.unregister_connection(self)
        self.containers.clear()

    def close(self) -> None:
        self.closing = True
        if not self.writer.is_closing():
            self.writer.close()

    def drain(self) -> None:
        """Server drain: close now if idle or waiting; else after the current request."""
        self.closing = True
        if self.current is None or self._waiting():
            if self._worker is not None:
                self._worker.cancel()
            self.close()

    def _waiting(self) -> bool:
        return self.current is not None and ROUTES[self.current].waiting

    def reference(self, container: Container) -> None:
        container.register_connection(self)
        self.containers.add(container)

    # ---- requests -----------------------------------------------------------------

    async def _work(self) -> None:
        try:
            await self._work_loop()
        except ConnectionError:
            pass  # the client went away; nothing left to answer
        except Exception:  # a bug here must close the connection, never wedge it
            log.exception("Closing connection after an internal error")
            self.close()
        finally:
            self.queue.close()

    async def _work_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is _END or self.closing:
                return
            if isinstance(item, MalformedStream):
                await self._send(encode_error(str(item)))
                self.close()
                return
            request = await self._parse(item)
            if request is None:
                continue
            kind = self.current = request.KIND
            self._current_task = asyncio.current_task()
            started = time.monotonic()
            try:
                await self._handle(request)
            except asyncio.CancelledError:
                if self.closing or self.reader.at_eof():
                    return
                raise
            finally:
                self.current = None
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("request", extra={"data": {"type": kind, "took": round(time.monotonic() - started, 6),
                                                         "peer": self.peer}})
            if self.closing:
                self.close()
                return

    async def _parse(self, item: Any) -> Any:
        """The typed request, or None once the client has its Error. Whatever a
        frame holds, it gets an answer: an unexpected failure of the checks
        (a bug, or a RecursionError on a value we did not foresee) is still
        `invalid request`, and the connection goes on."""
        if isinstance(item, FrameRefused):
            await self._send(encode_error(str(item)))
            return None
        try:
            return parse_message(item)
        except InvalidRequest as exc:
            message = str(exc)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("request could not be checked", extra={"data": {"error": type(exc).__name__}})
            message = f"invalid request: could not be checked ({type(exc).__name__})"
        await self._send(encode_error(message))
        return None

    async def _send(self, *parts: bytes) -> None:
        """One frame, given whole or in parts (head and payload of Stream data)."""
        if self.writer.is_closing():
            raise ConnectionResetError("client went away")
        for part in parts:
            self.writer.write(part)
        await self.writer.drain()

    async def _send_data(self, name: str, data: bytes | FileSpan) -> None:
        """A Stream data frame; a span of the output file goes by sendfile(2)."""
        head, payload = encode_stream_data(name, data)
        await self._send(head)
        await self._send_piece(payload)

    async def _send_piece(self, piece: bytes | FileSpan) -> None:
        if not isinstance(piece, FileSpan):
            return await self._send(piece)
        try:
            await asyncio.get_running_loop().sendfile(self.writer.transport, piece.file, piece.offset, piece.length)
        except RuntimeError as exc:  # the transport is closing
            raise ConnectionResetError("client went away") from exc

    async def _send_result(self, kind: str, result: dict[str, Any]) -> None:
        """A Link or Run answer. An output left in its file (StreamBytes) is
        sent from there piece by piece: the frame is never whole in memory."""
        if not any(isinstance(value, StreamBytes) for value in result.values()):
            return await self._send(encode_response(kind, result))
        try:
            for piece in encode_response_parts(kind, result):
                if isinstance(piece, StreamBytes):
                    for part in piece.parts():
                        await self._send_piece(part)
                else:
                    await self._send(piece)
        finally:
            close_result(result)

    async def _handle(self, request: Any) -> None:
        try:
            answer = await self.server.dispatcher.answer(request, self.reference)
            await self._send_answer(answer)
        except WardenError as exc:
            await self._send_error(exc.message, exc.data)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the client gets a message, the log the backtrace
            log.exception("request failed", extra={"data": {"type": request.KIND}})
            await self._send_error(f"internal error: {exc}" if str(exc) else type(exc).__name__)

    async def _send_error(self, message: str, data: str | None = None) -> None:
        try:
            await self._send(encode_error(message, data))
        except ConnectionError:
            pass

    async def _send_answer(self, answer: Answer) -> None:
        if answer.frames is None:
            await self._send_result(answer.kind, answer.payload)
        else:
            async for frame in answer.frames:
                if "data" in frame:
                    await self._send_data(frame["name"], frame["data"])
                else:
                    await self._send(encode_response(answer.kind, frame))
        if answer.consumed is not None:
            answer.consumed()
