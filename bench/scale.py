"""scale: N clients (threads, a connection each) create M containers in total,
then destroy them all. Failures, seconds, and the server's RSS per live
container: (VmRSS with M live - VmRSS with none) / M."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .server import BenchServer, rss_kib
from .settings import Settings
from .wire import frame


def _parallel(clients: int, work: Callable[[], None]) -> None:
    threads = [threading.Thread(target=work, name=f"scale-{i}", daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(server: BenchServer, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    total = settings.scale_containers
    lock = threading.Lock()
    handles: list[str] = []
    errors: list[str] = []
    claimed = [0]

    with server.connect() as wire:  # warm-up: the code paths of Create and Destroy loaded
        wire.call_raw(frame("Destroy", handle=server.create(wire)), "Destroy")
    time.sleep(0.5)  # let the server settle
    rss_empty = rss_kib(server.pid)

    def creator() -> None:
        try:
            wire = server.connect()
        except OSError as exc:
            with lock:
                errors.append(f"connect: {exc}")
            return
        with wire:
            while True:
                with lock:
                    if claimed[0] >= total:
                        return
                    claimed[0] += 1
                try:
                    handle = server.create(wire)
                except Exception as exc:  # noqa: BLE001 - counted as a failure
                    with lock:
                        errors.append(f"Create: {exc}")
                    continue
                with lock:
                    handles.append(handle)

    started = time.perf_counter()
    _parallel(settings.scale_clients, creator)
    created = time.perf_counter()
    live = len(handles)
    time.sleep(0.5)
    rss_live = rss_kib(server.pid)

    to_destroy = list(handles)

    def destroyer() -> None:
        with server.connect() as wire:
            while True:
                with lock:
                    if not to_destroy:
                        return
                    handle = to_destroy.pop()
                try:
                    wire.call_raw(frame("Destroy", handle=handle), "Destroy")
                except Exception as exc:  # noqa: BLE001 - counted as a failure
                    with lock:
                        errors.append(f"Destroy {handle}: {exc}")

    _parallel(settings.scale_clients, destroyer)
    done = time.perf_counter()
    rss_after = rss_kib(server.pid)
    result: dict[str, Any] = {
        "containers": live,
        "failures": len(errors),
        "seconds": round(done - started, 3),
        "rss_kib_per_container": round((rss_live - rss_empty) / live, 1) if live else None,
    }
    if not live:
        result["rss_kib_per_container_error"] = "no container was created"
    details = {
        "target": total,
        "clients": settings.scale_clients,
        "create_seconds": round(created - started, 3),
        "destroy_seconds": round(done - created, 3),
        "rss_kib": {"empty": rss_empty, "live": rss_live, "after_destroy": rss_after},
        "errors": errors[:10],
        "distinct_errors": sorted({e.split(":")[0] + ": " + e.split(":", 1)[1][:120] for e in errors})[:5],
    }
    return result, details
