"""The I/O-free core of a connection: encoding requests and matching responses to them.

Responses come back strictly in request order, so a queue of the request types still
owed is enough to pair every frame with its request. Keeping this apart from sockets
lets the blocking and the asyncio client share it and behave identically.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from warden.protocol import FrameReader, MalformedStream, encode_request
from warden.protocol.codec import PREFIX, InvalidResponse, parse_response

from .errors import ConnectionClosed, ProtocolError, ServerError
from .names import message_type
from .results import is_stream_end

# Responses are not bound by the server's request cap (Link returns whole job output);
# the limit only guards against a runaway peer.
DEFAULT_MAX_FRAME_SIZE = 1 << 30
DEFAULT_SOCKET_PATH = "/tmp/warden.sock"


class Endpoint:
    """What both clients keep: where the server is and the conversation with it
    (a fresh one for each connection)."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str] = DEFAULT_SOCKET_PATH,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.socket_path = os.fspath(socket_path)
        self.max_frame_size = max_frame_size
        self._conversation = Conversation(max_frame_size)


class Conversation:
    """Requests sent and responses owed on one connection."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._reader = FrameReader(max_frame_size)
        self._frames: deque[Any] = deque()
        self._owed: deque[str] = deque()

    @property
    def pending(self) -> int:
        """How many requests still wait for (the last frame of) their response."""
        return len(self._owed)

    def request(self, kind: str, fields: dict[str, Any]) -> bytes:
        """Validate and encode a request (raises `InvalidRequest`), and expect its answer."""
        kind = message_type(kind)
        data = encode_request(kind, fields)
        self._owed.append(kind)
        return data

    def feed(self, data: bytes) -> None:
        """Hand over bytes read from the socket; empty bytes mean the server hung up."""
        if not data:
            raise ConnectionClosed("warden closed the connection")
        frames = self._reader.feed(data)
        if frames and isinstance(frames[-1], MalformedStream):
            self._frames.extend(frames[:-1])
            raise ProtocolError(f"bad data from warden: {str(frames[-1]).removeprefix(PREFIX)}")
        self._frames.extend(frames)

    def next_response(self) -> dict[str, Any] | None:
        """The next response payload, or None until more bytes are fed.

        An `Error` frame is raised as `ServerError`. A Stream request stays owed until its
        terminating frame, so its data frames come out one per call.
        """
        if not self._frames:
            return None
        if not self._owed:
            raise ProtocolError("warden sent a frame no request asked for")
        try:
            kind, payload = parse_response(self._frames.popleft())
        except InvalidResponse as exc:
            raise ProtocolError(f"bad frame from warden: {exc}") from None
        expected = self._owed[0]
        if kind == "Error":
            self._owed.popleft()
            raise ServerError(
                payload.get("message") or "unknown error",
                payload.get("data"),
                payload.get("backtrace") or (),
            )
        if kind != expected:
            raise ProtocolError(f"expected a {expected} response, got {kind}")
        if expected != "Stream" or is_stream_end(payload):
            self._owed.popleft()
        return payload
