"""Integration tests of the Linux backend: a real server, real containers."""

from __future__ import annotations

import pytest

from ..integration.server import ServerProcess
from ..linux_kernel.kernel import skip_reason


@pytest.fixture(scope="module")
def linux_server():
    """One Linux server per test module (containers are what each test makes)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = ServerProcess("linux")
    try:
        server.start(timeout=120)
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def make_linux_server():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    servers: list[ServerProcess] = []

    def make(start: bool = True, **overrides) -> ServerProcess:
        server = ServerProcess("linux", **overrides)
        servers.append(server)
        return server.start(timeout=120) if start else server

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture
def wire(linux_server):
    with linux_server.connect() as w:
        yield w


@pytest.fixture
def container(wire):
    """A fresh container, destroyed after the test."""
    handle = wire.call("Create")["handle"]
    yield handle
    try:
        wire.call("Destroy", handle=handle)
    except Exception:  # noqa: BLE001 - the test may have destroyed it already
        pass
