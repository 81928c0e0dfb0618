"""The blocking client: one Unix socket, requests answered in order."""

from __future__ import annotations

import socket
from typing import Any

from .conversation import DEFAULT_SOCKET_PATH, Conversation, Endpoint
from .errors import ConnectError, ConnectionClosed, ProtocolError
from .names import message_type
from .results import JobResult
from .streams import Stream

__all__ = ["DEFAULT_SOCKET_PATH", "Client"]
READ_SIZE = 64 * 1024


class Client(Endpoint):
    """A blocking warden client.

    It connects on first use (or on `connect()`), so building one never fails. After a
    broken connection or a protocol error it is simply disconnected; the next request
    connects afresh.
    """

    _sock: socket.socket | None = None

    # -- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Open the connection if it is not open yet."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise ConnectError(self.socket_path, exc.strerror or str(exc)) from exc
        self._sock = sock
        self._conversation = Conversation(self.max_frame_size)

    def close(self) -> None:
        """Close the connection; responses still owed are abandoned."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- building blocks --------------------------------------------------------------

    def send(self, kind: str, **fields: Any) -> None:
        """Send one request without waiting; pair with `receive()` to pipeline."""
        self.connect()
        assert self._sock is not None
        data = self._conversation.request(kind, fields)
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise ConnectionClosed(f"connection to warden broke: {exc}") from exc

    def receive(self) -> dict[str, Any]:
        """The payload of the oldest response owed (one frame at a time for Stream)."""
        if self._sock is None or not self._conversation.pending:
            raise RuntimeError("receive() called with no request awaiting a response")
        try:
            while (payload := self._conversation.next_response()) is None:
                self._conversation.feed(self._read())
        except (ConnectionClosed, ProtocolError):
            self.close()
            raise
        return payload

    def _read(self) -> bytes:
        assert self._sock is not None
        try:
            return self._sock.recv(READ_SIZE)
        except OSError as exc:
            raise ConnectionClosed(f"connection to warden broke: {exc}") from exc

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its response payload."""
        if message_type(kind) == "Stream":
            raise ValueError("Stream answers with many frames; use stream()")
        if self.connected and self._conversation.pending:
            raise RuntimeError("responses to earlier requests are still owed; receive() them first")
        self.send(kind, **fields)
        return self.receive()

    # -- operations -------------------------------------------------------------------

    def create(self, **fields: Any) -> str:
        """Create a container (fields as in the Create request); return its handle."""
        handle: str = self.call("Create", **fields)["handle"]
        return handle

    def destroy(self, handle: str) -> None:
        self.call("Destroy", handle=handle)

    def stop(self, handle: str, kill: bool = False, background: bool = False) -> None:
        self.call("Stop", handle=handle, kill=kill, background=background)

    def info(self, handle: str) -> dict[str, Any]:
        return self.call("Info", handle=handle)

    def spawn(self, handle: str, script: str | bytes, **options: Any) -> int:
        """Start `script`; return the job id. Options: privileged, rlimits, discard_output, log_tag."""
        job_id: int = self.call("Spawn", handle=handle, script=script, **options)["job_id"]
        return job_id

    def link(self, handle: str, job_id: int) -> JobResult:
        return JobResult.from_payload(self.call("Link", handle=handle, job_id=job_id))

    def run(self, handle: str, script: str | bytes, **options: Any) -> JobResult:
        return JobResult.from_payload(self.call("Run", handle=handle, script=script, **options))

    def stream(self, handle: str, job_id: int) -> Stream:
        """Start streaming a job's output; iterate the result for `Chunk`s."""
        if self.connected and self._conversation.pending:
            raise RuntimeError("responses to earlier requests are still owed; receive() them first")
        self.send("Stream", handle=handle, job_id=job_id)
        return Stream(self)

    def net_in(self, handle: str, host_port: int | None = None, container_port: int | None = None) -> dict[str, Any]:
        """Forward a host port; the answer holds `host_port` and `container_port`."""
        return self.call("NetIn", handle=handle, host_port=host_port, container_port=container_port)

    def net_out(self, handle: str, **rule: Any) -> None:
        """Allow outbound traffic: network, port, port_range, protocol, icmp_type, icmp_code, log."""
        self.call("NetOut", handle=handle, **rule)

    def copy_in(self, handle: str, src_path: str, dst_path: str) -> None:
        self.call("CopyIn", handle=handle, src_path=src_path, dst_path=dst_path)

    def copy_out(self, handle: str, src_path: str, dst_path: str, owner: str | None = None) -> None:
        self.call("CopyOut", handle=handle, src_path=src_path, dst_path=dst_path, owner=owner)

    def limit_memory(self, handle: str, limit_in_bytes: int | None = None) -> int | None:
        """Set (or, without a value, query) the memory limit; return the kernel's value."""
        return self.call("LimitMemory", handle=handle, limit_in_bytes=limit_in_bytes).get("limit_in_bytes")

    def limit_disk(self, handle: str, **limits: int) -> dict[str, Any]:
        return self.call("LimitDisk", handle=handle, **limits)

    def limit_bandwidth(self, handle: str, rate: int, burst: int) -> dict[str, Any]:
        return self.call("LimitBandwidth", handle=handle, rate=rate, burst=burst)

    def limit_cpu(self, handle: str, limit_in_shares: int | None = None) -> int | None:
        """Set (or, without a value, query) the cpu shares; return the kernel's value."""
        return self.call("LimitCpu", handle=handle, limit_in_shares=limit_in_shares).get("limit_in_shares")

    def ping(self) -> None:
        self.call("Ping")

    def echo(self, message: str) -> str:
        echoed: str = self.call("Echo", message=message)["message"]
        return echoed

    def list(self) -> list[str]:  # defined last: the name shadows the builtin in this class body
        handles: list[str] = self.call("List")["handles"]
        return handles
