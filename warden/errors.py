"""Errors a client sees: the message is the wire text, `data` carries details."""

from __future__ import annotations


class WardenError(Exception):
    def __init__(self, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class StateError(WardenError):
    def __init__(self, allowed: tuple[str, ...], current: str) -> None:
        super().__init__(
            f"Container state must be one of '{', '.join(allowed)}', current state is '{current}'"
        )


class NotImplementedByBackend(WardenError):
    def __init__(self) -> None:
        super().__init__("not implemented")
