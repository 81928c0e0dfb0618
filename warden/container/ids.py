"""Container ids: 11 base-32 digits, so that `w-<id>-N` fits IFNAMSIZ (15 chars)."""

from __future__ import annotations

import itertools
import time

ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_counter = itertools.count(int(time.time() * 1_000_000))


def encode(value: int) -> str:
    value &= (1 << 55) - 1
    return "".join(ALPHABET[(value >> shift) & 31] for shift in range(50, -5, -5))


def next_id() -> str:
    return encode(next(_counter))
