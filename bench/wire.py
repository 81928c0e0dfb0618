"""A lean blocking msgpack client for the benchmarks.

It measures the server, not a client: frames are packed with msgpack directly
(no catalogue validation, which `warden.client` does on every request) and
responses are decoded by msgpack's C unpacker from large reads.
"""

from __future__ import annotations

import socket
from typing import Any

import msgpack


class BenchServerError(Exception):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("message") or "error")
        self.message = payload.get("message")
        self.data = payload.get("data")

    def __str__(self) -> str:
        return f"{self.message}: {self.data}" if self.data else str(self.message)


def frame(kind: str, **payload: Any) -> bytes:
    return msgpack.packb({"type": kind, "payload": payload}, use_bin_type=True)


class Wire:
    READ = 1 << 20

    def __init__(self, path: str, timeout: float | None = 600) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 31)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self) -> dict[str, Any]:
        while True:
            for obj in self.unpacker:
                message: dict[str, Any] = obj
                return message
            data = self.sock.recv(self.READ)
            if not data:
                raise EOFError("server closed the connection")
            self.unpacker.feed(data)

    def call_raw(self, data: bytes, kind: str) -> dict[str, Any]:
        """Send one pre-packed request and return its response payload."""
        self.sock.sendall(data)
        response = self.recv()
        if response["type"] == "Error":
            raise BenchServerError(response["payload"])
        if response["type"] != kind:
            raise RuntimeError(f"expected a {kind} response, got {response['type']}")
        payload: dict[str, Any] = response["payload"]
        return payload

    def call(self, kind: str, **payload: Any) -> dict[str, Any]:
        return self.call_raw(frame(kind, **payload), kind)

    def stream_count(self, handle: str, job_id: int) -> tuple[int, dict[str, Any]]:
        """Stream a job; return (bytes of output received, terminating payload).

        Reads into one reused buffer and decodes with raw=True (keys stay bytes), so
        the client costs little next to the server. Requests on this connection are
        answered in order and every earlier one has been, so the text unpacker holds
        nothing of this response."""
        self.sock.sendall(frame("Stream", handle=handle, job_id=job_id))
        unpacker = msgpack.Unpacker(raw=True, max_buffer_size=1 << 31)
        received = 0
        buf = bytearray(self.READ)
        view = memoryview(buf)
        while True:
            for obj in unpacker:
                payload = obj[b"payload"]
                if obj[b"type"] == b"Error":
                    raise BenchServerError({k.decode(): v.decode() if isinstance(v, bytes) else v
                                            for k, v in payload.items()})
                if b"exit_status" in payload:
                    return received, {"exit_status": payload[b"exit_status"]}
                received += len(payload[b"data"])
            n = self.sock.recv_into(buf)
            if not n:
                raise EOFError("server closed the connection during Stream")
            unpacker.feed(view[:n])
