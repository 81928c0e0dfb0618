from __future__ import annotations

from pathlib import Path

import pytest

from .server import ROOT, ServerProcess

HELPER = ROOT / "root" / "insecure" / "skeleton" / "bin" / "iomux-spawn"


@pytest.fixture
def make_server():
    """A factory of real servers; every one is cleaned up even when the test fails."""
    if not HELPER.exists():
        pytest.skip("C helpers not built: run `invoke build` first")
    servers: list[ServerProcess] = []

    def make(backend: str = "insecure", start: bool = True, **overrides) -> ServerProcess:
        server = ServerProcess(backend, **overrides)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.cleanup()


@pytest.fixture
def server(make_server) -> ServerProcess:
    return make_server()


@pytest.fixture
def wire(server):
    with server.connect() as w:
        yield w


def job_dirs(path: str) -> list[Path]:
    return sorted(Path(path, "jobs").iterdir())
