"""Typed views of the responses that carry job output, shared by both clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def is_stream_end(payload: dict[str, Any]) -> bool:
    """A Stream response is either a data frame (`name`, `data`) or the terminating frame,
    which is the one that carries `exit_status`."""
    return "exit_status" in payload


@dataclass(frozen=True)
class Chunk:
    """One piece of a job's output, as a Stream data frame delivers it."""

    name: str  # "stdout" or "stderr"
    data: bytes


@dataclass(frozen=True)
class StreamEnd:
    """The terminating frame of a Stream: how the job ended."""

    exit_status: int | None
    info: dict[str, Any] | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> StreamEnd:
        return cls(exit_status=payload.get("exit_status"), info=payload.get("info"))


@dataclass(frozen=True)
class JobResult:
    """What Link and Run answer: the exit status and the job's whole output."""

    exit_status: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    info: dict[str, Any] | None = None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> JobResult:
        return cls(
            exit_status=payload.get("exit_status"),
            stdout=payload.get("stdout") or b"",
            stderr=payload.get("stderr") or b"",
            info=payload.get("info"),
        )
