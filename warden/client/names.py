"""Message names: the wire uses `LimitMemory`, people and the REPL type `limit_memory`."""

from __future__ import annotations

import re

from warden.protocol import InvalidRequest, catalogue

_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(message_type: str) -> str:
    """`LimitBandwidth` -> `limit_bandwidth`."""
    return _WORD_START.sub("_", message_type).lower()


def message_type(name: str) -> str:
    """Accept either spelling of a request's name and return the wire type (`NetIn`)."""
    messages = catalogue().messages
    if name in messages:
        return name
    camel = "".join(part.capitalize() for part in name.split("_"))
    if camel in messages and snake_case(camel) == name:
        return camel
    raise InvalidRequest(f"unknown type '{name}'")
