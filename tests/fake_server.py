"""A scripted stand-in for the warden server, for testing client code without one.

`FakeServer` listens on a Unix socket in background threads, checks each request
against the catalogue like the real server, records it, and answers with whatever the
handler returns: frames built with `reply()`/`error()`, raw bytes, or `CLOSE` to hang up.
"""

from __future__ import annotations

import os
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any

from warden.protocol import FrameReader, InvalidRequest, MalformedStream, catalogue, pack, parse_request


class _Close:
    def __repr__(self) -> str:
        return "CLOSE"


CLOSE = _Close()
"""Return this from a handler to make the server close the connection at that point."""

Answer = dict[str, Any] | bytes | _Close
Handler = Callable[[str, dict[str, Any]], Iterable[Answer]]


def reply(kind: str, **payload: Any) -> dict[str, Any]:
    """A response frame of type `kind`."""
    return {"type": kind, "payload": payload}


def error(message: str, data: str | None = None, backtrace: Iterable[str] = ()) -> dict[str, Any]:
    """An `Error` frame."""
    payload: dict[str, Any] = {"message": message, "backtrace": list(backtrace)}
    if data is not None:
        payload["data"] = data
    return reply("Error", **payload)


def empty_replies(kind: str, payload: dict[str, Any]) -> list[Answer]:
    """The default handler: answer every request with an empty response of its type."""
    return [reply(kind)]


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        reader = FrameReader(catalogue().max_request_size)
        while data := self.request.recv(65536):
            for obj in reader.feed(data):
                if isinstance(obj, MalformedStream) or not self._answer(obj):
                    return

    def _answer(self, obj: Any) -> bool:
        """Answer one request; False when the handler asked to hang up."""
        try:
            kind, _ = parse_request(obj)
        except InvalidRequest as exc:
            self.request.sendall(pack(error(str(exc))))
            return True
        payload = obj["payload"]
        self.server.fake.requests.append((kind, payload))
        for answer in self.server.fake.handler(kind, payload):
            if isinstance(answer, _Close):
                return False
            self.request.sendall(answer if isinstance(answer, bytes) else pack(answer))
        return True


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    fake: FakeServer


class FakeServer:
    """A warden look-alike on `socket_path`; use as a context manager."""

    def __init__(self, socket_path: str | os.PathLike[str], handler: Handler = empty_replies) -> None:
        self.socket_path = os.fspath(socket_path)
        self.handler = handler
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeServer:
        server = _Server(self.socket_path, _Connection)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="fake-warden", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
