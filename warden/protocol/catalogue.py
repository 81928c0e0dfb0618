"""The protocol catalogue: `spec/protocol.yml` loaded into typed objects.

Everything that encodes, decodes, validates or documents messages reads this one
catalogue, so PROTOCOL.md and the code cannot drift apart silently.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "protocol.yml"

SCALAR_TYPES = {"str", "bin", "text", "bool", "uint32", "uint64", "int32"}
INT_RANGES = {
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "int32": (-(2**31), 2**31 - 1),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = False
    repeated: bool = False
    default: Any = None
    enum: str | None = None
    struct: str | None = None
    doc: str = ""


@dataclass(frozen=True)
class Message:
    name: str
    doc: str
    request: dict[str, Field] | None
    response: dict[str, Field]


@dataclass(frozen=True)
class Catalogue:
    enums: dict[str, tuple[str, ...]]
    structs: dict[str, dict[str, Field]]
    messages: dict[str, Message]
    max_request_size: int

    def request_types(self) -> list[str]:
        return [name for name, msg in self.messages.items() if msg.request is not None]


def _fields(raw: dict[str, Any] | None) -> dict[str, Field]:
    result: dict[str, Field] = {}
    for name, attrs in (raw or {}).items():
        result[name] = Field(
            name=name,
            type=attrs["type"],
            required=bool(attrs.get("required", False)),
            repeated=bool(attrs.get("repeated", False)),
            default=attrs.get("default"),
            enum=attrs.get("enum"),
            struct=attrs.get("struct"),
            doc=str(attrs.get("doc", "")),
        )
    return result


def _check(cat: Catalogue) -> None:
    """Catch a broken catalogue at load time rather than on a client's request."""
    for owner, fields in [*cat.structs.items(), *((m.name, m.response) for m in cat.messages.values()),
                          *((m.name, m.request) for m in cat.messages.values() if m.request)]:
        for f in fields.values():
            if f.type == "enum" and f.enum not in cat.enums:
                raise ValueError(f"{owner}.{f.name}: unknown enum {f.enum!r}")
            elif f.type == "message" and f.struct not in cat.structs:
                raise ValueError(f"{owner}.{f.name}: unknown struct {f.struct!r}")
            elif f.type not in SCALAR_TYPES | {"enum", "message"}:
                raise ValueError(f"{owner}.{f.name}: unknown type {f.type!r}")


def load(path: Path = SPEC_PATH) -> Catalogue:
    raw = yaml.safe_load(path.read_text())
    structs = {name: _fields(fields) for name, fields in raw["structs"].items()}
    messages: dict[str, Message] = {}
    for name, msg in raw["messages"].items():
        response = msg["response"]
        messages[name] = Message(
            name=name,
            doc=str(msg.get("doc", "")),
            request=None if msg["request"] is None else _fields(msg["request"]),
            response=structs[response] if isinstance(response, str) else _fields(response),
        )
    cat = Catalogue(
        enums={name: tuple(values) for name, values in raw["enums"].items()},
        structs=structs,
        messages=messages,
        max_request_size=int(raw["frame"]["max_request_size"]),
    )
    _check(cat)
    return cat


@functools.cache
def catalogue() -> Catalogue:
    return load()
