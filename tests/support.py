"""What every test package shares: waiting for a condition, and the marks of
tests that need root and the real kernel."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def poll(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Call `condition` until it returns something true or `timeout` passes;
    return its last value (the caller asserts on it, with its own message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_for(condition: Callable[[], Any], timeout: float = 20, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Like `poll`, but a timeout fails the test, naming what never happened."""
    value = poll(condition, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value


def needs_kernel(reason: str | None) -> list[pytest.MarkDecorator]:
    """The marks of a module of real-kernel tests: `root`, and skipped with
    `reason` when it is not None (the skip says what is missing)."""
    return [pytest.mark.root, pytest.mark.skipif(reason is not None, reason=reason or "")]
