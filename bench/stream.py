"""stream: a job writes N bytes to stdout (`head -c N /dev/zero`), streamed to a
client that counts them, against `dd if=/dev/zero bs=1M count=N/1M | cat >/dev/null`.

The warden time runs from the Spawn request to the Stream's terminating frame;
the job's output is kept on disk by its holder (server.job_output_limit is
raised for this server). Repeats alternate warden and the pipe; medians.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any

from .server import BenchServer, rss_kib
from .settings import MIB, Settings


def run(server: BenchServer, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    size = settings.stream_bytes
    result: dict[str, Any] = {}
    warden: list[float] = []
    pipe: list[float] = []
    peak_before = rss_kib(server.pid, "VmHWM")
    wire = server.connect()
    try:
        handle = server.create(wire)
        try:
            for _ in range(settings.stream_repeats):
                started = time.perf_counter()
                job = wire.call("Spawn", handle=handle, script=f"head -c {size} /dev/zero")["job_id"]
                received, end = wire.stream_count(handle, job)
                took = time.perf_counter() - started
                if received != size or end.get("exit_status") != 0:
                    raise RuntimeError(f"streamed {received} of {size} bytes, exit status {end.get('exit_status')}")
                warden.append(size / MIB / took)

                started = time.perf_counter()
                subprocess.run(["sh", "-c", f"dd if=/dev/zero bs=1M count={size // MIB} 2>/dev/null | cat >/dev/null"],
                               check=True, timeout=600)
                pipe.append(size / MIB / (time.perf_counter() - started))
        finally:
            wire.call("Destroy", handle=handle)
    except Exception as exc:  # noqa: BLE001 - recorded, the other numbers stand
        result["warden_mib_s_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        wire.close()
    result["warden_mib_s"] = round(statistics.median(warden), 1) if warden else None
    result["pipe_mib_s"] = round(statistics.median(pipe), 1) if pipe else None
    if result["warden_mib_s"] and result["pipe_mib_s"]:
        result["ratio"] = round(result["warden_mib_s"] / result["pipe_mib_s"], 3)
    else:
        result["ratio"] = None
        result["ratio_error"] = "missing a side of the comparison"
    return result, {"bytes": size, "repeats": settings.stream_repeats,
                    "server_peak_rss_kib": {"before": peak_before, "after": rss_kib(server.pid, "VmHWM")},
                    "warden_runs_mib_s": [round(x, 1) for x in warden],
                    "pipe_runs_mib_s": [round(x, 1) for x in pipe]}
