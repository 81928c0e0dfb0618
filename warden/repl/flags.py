"""Turning `--field value` flags into a request payload, checked against the catalogue.

Flag paths mirror the payload: `--rlimits.nofile 100` sets a nested field, and
`--bind_mounts[0].src_path /x` an element of a repeated one. An index must be the
current length (append) or the length - 1 (amend the last element), so elements are
built in order and no gaps can appear.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from warden.protocol import Catalogue, Field, InvalidRequest, catalogue, encode_request
from warden.protocol.catalogue import INT_RANGES
from warden.protocol.codec import PREFIX

from .commands import Command
from .errors import FlagError, HelpRequested

_SEGMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?")
_INTEGER = re.compile(r"[+-]?\d+")
_MISSING = re.compile(r"missing required field '(.+)'")


@dataclass(frozen=True)
class Segment:
    name: str
    index: int | None


def parse_flags(command: Command, tokens: list[str]) -> dict[str, Any]:
    """Build the request payload for `command` from its flag tokens."""
    cat = catalogue()
    payload: dict[str, Any] = {}
    remaining = iter(tokens)
    for token in remaining:
        flag, inline = _split(token)
        segments = _segments(flag)
        take = _value_source(flag, inline, remaining)
        _assign(cat, command.fields, payload, segments, flag, take)
    _check(command, payload)
    return payload


def _split(token: str) -> tuple[str, str | None]:
    """`--a=b` -> (`--a`, `b`); `--a` -> (`--a`, None)."""
    if token == "--help":
        raise HelpRequested
    if not token.startswith("--") or len(token) == 2:
        raise FlagError(f"Invalid flag: '{token}'.")
    flag, sep, value = token.partition("=")
    return flag, (value if sep else None)


def _segments(flag: str) -> list[Segment]:
    segments = []
    for part in flag[2:].split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise FlagError(f"Invalid flag: '{flag}'.")
        index = match["index"]
        segments.append(Segment(match["name"], None if index is None else int(index)))
    return segments


def _value_source(flag: str, inline: str | None, remaining: Iterator[str]) -> Callable[[Field], str | None]:
    """The value is read only once the field is known: booleans take none."""

    def take(field: Field) -> str | None:
        if inline is not None or field.type == "bool":
            return inline
        try:
            return next(remaining)
        except StopIteration:
            raise FlagError(f"Missing value for flag: '{flag}'.") from None

    return take


def _assign(
    cat: Catalogue,
    spec: dict[str, Field],
    target: dict[str, Any],
    segments: list[Segment],
    flag: str,
    take: Callable[[Field], str | None],
) -> None:
    segment, rest = segments[0], segments[1:]
    field = spec.get(segment.name)
    if field is None:
        raise FlagError(f"In flag: '{flag}', the field: '{segment.name}' is invalid.")
    container, key = _slot(field, segment, target, flag)
    if field.type == "message":
        if not rest:
            raise FlagError(
                f"In flag: '{flag}', the field: '{field.name}' has fields of its own; "
                f"set them like '{flag}.<field>'."
            )
        if not isinstance(container[key], dict):
            container[key] = {}
        _assign(cat, cat.structs[field.struct or ""], container[key], rest, flag, take)
        return
    if rest:
        raise FlagError(f"In flag: '{flag}', the field: '{field.name}' has no nested fields.")
    container[key] = convert(cat, field, take(field), flag)


def _slot(field: Field, segment: Segment, target: dict[str, Any], flag: str) -> tuple[Any, Any]:
    """Where the flag's value goes: (`target`, name) or (the repeated list, index)."""
    if not field.repeated:
        if segment.index is not None:
            raise FlagError(f"In flag: '{flag}', the field: '{field.name}' is not an array; drop the index.")
        target.setdefault(field.name, None)
        return target, field.name
    if segment.index is None:
        raise FlagError(f"In flag: '{flag}', the field: '{field.name}' is an array; write '{field.name}[index]'.")
    items = target.setdefault(field.name, [])
    if segment.index == len(items):
        items.append(None)
    elif segment.index != len(items) - 1:
        allowed = f"{len(items)} (append)" + (f" or {len(items) - 1} (amend the last one)" if items else "")
        raise FlagError(f"In flag: '{flag}', the index: {segment.index} is invalid; use {allowed}.")
    return items, segment.index


def convert(cat: Catalogue, field: Field, text: str | None, flag: str) -> Any:
    """A flag's text as the field's protocol type."""
    if field.type == "bool":
        return _boolean(text, flag)
    assert text is not None
    if field.type in INT_RANGES:
        return _integer(field.type, text, flag)
    if field.type == "enum":
        allowed = cat.enums[field.enum or ""]
        if text.upper() not in allowed:
            raise FlagError(f"In flag: '{flag}', the value: '{text}' is not one of {', '.join(allowed)}.")
        return text.upper()
    return text


def _boolean(text: str | None, flag: str) -> bool:
    if text is None or text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    raise FlagError(f"In flag: '{flag}', the value: '{text}' is not true or false.")


def _integer(kind: str, text: str, flag: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise FlagError(f"In flag: '{flag}', the value: '{text}' is not an integer.")
    value = int(text)
    low, high = INT_RANGES[kind]
    if not low <= value <= high:
        raise FlagError(f"In flag: '{flag}', the value: '{text}' is out of range for {kind} ({low}..{high}).")
    return value


def _check(command: Command, payload: dict[str, Any]) -> None:
    """Catch missing required fields here, before anything goes over the wire."""
    try:
        encode_request(command.message.name, payload)
    except InvalidRequest as exc:
        detail = str(exc).removeprefix(PREFIX)
        missing = _MISSING.fullmatch(detail)
        if missing:
            raise FlagError(f"Command: '{command.name}' needs the flag: '--{missing[1]}'.") from None
        raise FlagError(f"Command: '{command.name}': {detail}.") from None
