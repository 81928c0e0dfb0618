"""A deliberately small msgpack client written from PROTOCOL.md alone.

The integration tests talk to the server through this, not through
`warden.client`, so they check the wire contract the way an outside client sees it.
"""

from __future__ import annotations

import socket
from typing import Any

import msgpack


class ServerError(Exception):
    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("message"))
        self.message = payload.get("message")
        self.data = payload.get("data")


class Wire:
    def __init__(self, path: str, timeout: float = 60) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False)
        self._raw = msgpack.Unpacker(raw=True)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, kind: str, **payload: Any) -> None:
        self.send_raw(msgpack.packb({"type": kind, "payload": payload}, use_bin_type=True))

    def recv(self) -> dict[str, Any]:
        """The next frame, or EOFError when the server closed the connection."""
        while True:
            for frame in self.unpacker:
                return frame
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("server closed the connection")
            self.unpacker.feed(data)

    def call(self, kind: str, **payload: Any) -> dict[str, Any]:
        self.send(kind, **payload)
        frame = self.recv()
        if frame["type"] == "Error":
            raise ServerError(frame["payload"])
        assert frame["type"] == kind, frame
        return frame["payload"]

    def stream(self, handle: str, job_id: int) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
        self.send("Stream", handle=handle, job_id=job_id)
        chunks = []
        while True:
            frame = self.recv()
            if frame["type"] == "Error":
                raise ServerError(frame["payload"])
            payload = frame["payload"]
            if "exit_status" in payload:
                return chunks, payload
            chunks.append((payload["name"], payload["data"]))

    def is_closed(self, timeout: float = 10) -> bool:
        """True when the server has closed its end (EOF)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
