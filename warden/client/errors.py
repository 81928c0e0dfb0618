"""Errors raised by the warden clients.

They share one base class so a caller can catch "anything warden-related" in one place,
while the REPL can still tell a broken connection (worth a reconnect) from a refusal.
"""

from __future__ import annotations

from collections.abc import Sequence


class WardenError(Exception):
    """Base class of every error the clients raise on their own."""


class ConnectError(WardenError):
    """The server's socket could not be reached; the message names the path tried."""

    def __init__(self, socket_path: str, reason: str) -> None:
        super().__init__(f"cannot connect to warden at {socket_path}: {reason}")
        self.socket_path = socket_path
        self.reason = reason


class ConnectionClosed(WardenError):
    """The connection ended (EOF or a broken pipe) while a response was still owed."""


class ProtocolError(WardenError):
    """The server sent something that breaks the wire contract; the connection is dropped."""


class ServerError(WardenError):
    """The server answered with an `Error` frame. The connection stays usable."""

    def __init__(self, message: str, data: str | None = None, backtrace: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.backtrace = tuple(backtrace)
