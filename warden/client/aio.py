"""The asyncio client: the same API as `Client`, every operation awaitable."""

from __future__ import annotations

import asyncio
from typing import Any

from .conversation import Conversation, Endpoint
from .errors import ConnectError, ConnectionClosed, ProtocolError
from .names import message_type
from .results import JobResult
from .streams import AsyncStream
from .sync import READ_SIZE


class AsyncClient(Endpoint):
    """An asyncio warden client (`asyncio.open_unix_connection`).

    Like `Client` it connects on first use and is left disconnected after a broken
    connection, so the next request reconnects.
    """

    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None

    # -- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def connect(self) -> None:
        """Open the connection if it is not open yet."""
        if self._writer is not None:
            return
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self.socket_path)
        except OSError as exc:
            raise ConnectError(self.socket_path, exc.strerror or str(exc)) from exc
        self._conversation = Conversation(self.max_frame_size)

    async def close(self) -> None:
        """Close the connection; responses still owed are abandoned."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass  # the peer is already gone; closing is all we wanted

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- building blocks --------------------------------------------------------------

    async def send(self, kind: str, **fields: Any) -> None:
        """Send one request without waiting; pair with `receive()` to pipeline."""
        await self.connect()
        assert self._writer is not None
        data = self._conversation.request(kind, fields)
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            await self.close()
            raise ConnectionClosed(f"connection to warden broke: {exc}") from exc

    async def receive(self) -> dict[str, Any]:
        """The payload of the oldest response owed (one frame at a time for Stream)."""
        if self._reader is None or not self._conversation.pending:
            raise RuntimeError("receive() called with no request awaiting a response")
        try:
            while (payload := self._conversation.next_response()) is None:
                self._conversation.feed(await self._read())
        except (ConnectionClosed, ProtocolError):
            await self.close()
            raise
        return payload

    async def _read(self) -> bytes:
        assert self._reader is not None
        try:
            return await self._reader.read(READ_SIZE)
        except OSError as exc:
            raise ConnectionClosed(f"connection to warden broke: {exc}") from exc

    async def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its response payload."""
        if message_type(kind) == "Stream":
            raise ValueError("Stream answers with many frames; use stream()")
        if self.connected and self._conversation.pending:
            raise RuntimeError("responses to earlier requests are still owed; receive() them first")
        await self.send(kind, **fields)
        return await self.receive()

    # -- operations -------------------------------------------------------------------

    async def create(self, **fields: Any) -> str:
        """Create a container (fields as in the Create request); return its handle."""
        handle: str = (await self.call("Create", **fields))["handle"]
        return handle

    async def destroy(self, handle: str) -> None:
        await self.call("Destroy", handle=handle)

    async def stop(self, handle: str, kill: bool = False, background: bool = False) -> None:
        await self.call("Stop", handle=handle, kill=kill, background=background)

    async def info(self, handle: str) -> dict[str, Any]:
        return await self.call("Info", handle=handle)

    async def spawn(self, handle: str, script: str | bytes, **options: Any) -> int:
        """Start `script`; return the job id. Options: privileged, rlimits, discard_output, log_tag."""
        job_id: int = (await self.call("Spawn", handle=handle, script=script, **options))["job_id"]
        return job_id

    async def link(self, handle: str, job_id: int) -> JobResult:
        return JobResult.from_payload(await self.call("Link", handle=handle, job_id=job_id))

    async def run(self, handle: str, script: str | bytes, **options: Any) -> JobResult:
        return JobResult.from_payload(await self.call("Run", handle=handle, script=script, **options))

    async def stream(self, handle: str, job_id: int) -> AsyncStream:
        """Start streaming a job's output; `async for` over the result for `Chunk`s."""
        if self.connected and self._conversation.pending:
            raise RuntimeError("responses to earlier requests are still owed; receive() them first")
        await self.send("Stream", handle=handle, job_id=job_id)
        return AsyncStream(self)

    async def net_in(
        self, handle: str, host_port: int | None = None, container_port: int | None = None
    ) -> dict[str, Any]:
        """Forward a host port; the answer holds `host_port` and `container_port`."""
        return await self.call("NetIn", handle=handle, host_port=host_port, container_port=container_port)

    async def net_out(self, handle: str, **rule: Any) -> None:
        """Allow outbound traffic: network, port, port_range, protocol, icmp_type, icmp_code, log."""
        await self.call("NetOut", handle=handle, **rule)

    async def copy_in(self, handle: str, src_path: str, dst_path: str) -> None:
        await self.call("CopyIn", handle=handle, src_path=src_path, dst_path=dst_path)

    async def copy_out(self, handle: str, src_path: str, dst_path: str, owner: str | None = None) -> None:
        await self.call("CopyOut", handle=handle, src_path=src_path, dst_path=dst_path, owner=owner)

    async def limit_memory(self, handle: str, limit_in_bytes: int | None = None) -> int | None:
        """Set (or, without a value, query) the memory limit; return the kernel's value."""
        return (await self.call("LimitMemory", handle=handle, limit_in_bytes=limit_in_bytes)).get("limit_in_bytes")

    async def limit_disk(self, handle: str, **limits: int) -> dict[str, Any]:
        return await self.call("LimitDisk", handle=handle, **limits)

    async def limit_bandwidth(self, handle: str, rate: int, burst: int) -> dict[str, Any]:
        return await self.call("LimitBandwidth", handle=handle, rate=rate, burst=burst)

    async def limit_cpu(self, handle: str, limit_in_shares: int | None = None) -> int | None:
        """Set (or, without a value, query) the cpu shares; return the kernel's value."""
        return (await self.call("LimitCpu", handle=handle, limit_in_shares=limit_in_shares)).get("limit_in_shares")

    async def ping(self) -> None:
        await self.call("Ping")

    async def echo(self, message: str) -> str:
        echoed: str = (await self.call("Echo", message=message))["message"]
        return echoed

    async def list(self) -> list[str]:  # defined last: the name shadows the builtin in this class body
        handles: list[str] = (await self.call("List"))["handles"]
        return handles
