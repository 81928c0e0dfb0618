"""What the REPL prints: responses as `key : value` lines, job output as raw bytes.

Everything goes through binary streams, so job output reaches the terminal byte for
byte, and text lines and output chunks cannot overtake each other in separate buffers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO


def flatten(payload: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(`key`, `value`) pairs: repeated fields as `name[i]`, nested ones as `parent.child`;
    unset fields are left out."""
    for name, value in payload.items():
        yield from _flatten_value(prefix + name, value)


def _flatten_value(key: str, value: Any) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, dict):
        yield from flatten(value, key + ".")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten_value(f"{key}[{i}]", item)
    else:
        yield key, format_value(value)


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def render(payload: dict[str, Any]) -> list[str]:
    return [f"{key} : {value}" for key, value in flatten(payload)]


@dataclass
class Console:
    """The REPL's stdout and stderr, flushed after every write so output is live."""

    out: BinaryIO
    err: BinaryIO

    def line(self, text: str) -> None:
        """Print text, adding a newline unless it already ends with one."""
        self._write(self.out, text)

    def error(self, text: str) -> None:
        self._write(self.err, text)

    def output(self, name: str, data: bytes) -> None:
        """A chunk of job output, to the stream it came from."""
        stream = self.err if name == "stderr" else self.out
        stream.write(data)
        stream.flush()

    @staticmethod
    def _write(stream: BinaryIO, text: str) -> None:
        if not text.endswith("\n"):
            text += "\n"
        stream.write(text.encode("utf-8", "replace"))
        stream.flush()
