"""ping: Ping round trips per second on one connection.

`rps` is pipelined: batches of `ping_batch` requests written at once, then their
responses read (allowed by PROTOCOL.md; responses come back in order). The
details also give one-at-a-time round trips with the bench's lean client and
with the project's `warden.client.Client` (which validates every request
against the catalogue)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .server import BenchServer
from .wire import Wire, frame


def _pipelined(wire: Wire, seconds: float, batch: int) -> float:
    data = frame("Ping") * batch
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        wire.sock.sendall(data)
        for _ in range(batch):
            response = wire.recv()
            if response["type"] != "Ping":
                raise RuntimeError(f"expected Ping, got {response}")
        count += batch
    return count / (time.perf_counter() - started)


def _one_at_a_time(call: Callable[[], object], seconds: float) -> float:
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            call()
        count += 50
    return count / (time.perf_counter() - started)


def run(server: BenchServer, seconds: float, batch: int) -> tuple[dict[str, Any], dict[str, Any]]:
    details: dict[str, Any] = {"batch": batch}
    with server.connect() as wire:
        _pipelined(wire, min(0.3, seconds), batch)  # warm-up
        rps = _pipelined(wire, seconds, batch)
        ping = frame("Ping")
        details["unpipelined_rps"] = round(_one_at_a_time(lambda: wire.call_raw(ping, "Ping"), seconds))
    try:
        from warden.client import Client

        with Client(server.socket_path) as client:
            details["warden_client_unpipelined_rps"] = round(_one_at_a_time(client.ping, seconds))
    except Exception as exc:  # noqa: BLE001 - a detail only
        details["warden_client_error"] = str(exc)
    return {"rps": round(rps)}, details
