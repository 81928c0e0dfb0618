"""stream: a job writes N bytes to stdout, streamed to a client that counts
them, against a pipe. Both sides run the same writer: the job's output goes
through warden (the container's job holder, the output file, the server, the
socket), the pipe's through `| cat >/dev/null`.

The judged writer is `dd if=/dev/zero bs=1M` (the issue's `dd | cat`). A second
writer, `head -c N /dev/zero`, writes 8 KiB at a time, the common shape of a
chatty program; it is reported beside, not judged.

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
from .wire import Wire


def writers(size: int) -> dict[str, str]:
    return {"dd": f"dd if=/dev/zero bs=1M count={size // MIB} status=none",
            "head": f"head -c {size} /dev/zero"}


def run(server: BenchServer, settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    size = settings.stream_bytes
    runs: dict[str, dict[str, list[float]]] = {name: {"warden": [], "pipe": []} for name in writers(size)}
    result: dict[str, Any] = {}
    peak_before = rss_kib(server.pid, "VmHWM")
    wire = server.connect()
    try:
        handle = server.create(wire)
        try:
            for _ in range(settings.stream_repeats):
                for name, writer in writers(size).items():
                    runs[name]["warden"].append(_through_warden(wire, handle, writer, size))
                    runs[name]["pipe"].append(_through_pipe(writer, size))
        finally:
            wire.call("Destroy", handle=handle)
    except Exception as exc:  # noqa: BLE001 - recorded, the other numbers stand
        result["warden_mib_s_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        wire.close()
    medians = {name: {side: _median(values) for side, values in sides.items()} for name, sides in runs.items()}
    result["warden_mib_s"] = medians["dd"]["warden"]
    result["pipe_mib_s"] = medians["dd"]["pipe"]
    result["ratio"] = _ratio(medians["dd"])
    if result["ratio"] is None:
        result["ratio_error"] = "missing a side of the comparison"
    details = {"bytes": size, "repeats": settings.stream_repeats, "writer": writers(size)["dd"],
               "server_peak_rss_kib": {"before": peak_before, "after": rss_kib(server.pid, "VmHWM")},
               "warden_runs_mib_s": _rounded(runs["dd"]["warden"]),
               "pipe_runs_mib_s": _rounded(runs["dd"]["pipe"]),
               "head": {"writer": writers(size)["head"], "warden_mib_s": medians["head"]["warden"],
                        "pipe_mib_s": medians["head"]["pipe"], "ratio": _ratio(medians["head"]),
                        "warden_runs_mib_s": _rounded(runs["head"]["warden"]),
                        "pipe_runs_mib_s": _rounded(runs["head"]["pipe"])}}
    return result, details


def _through_warden(wire: Wire, handle: str, writer: str, size: int) -> float:
    started = time.perf_counter()
    job = wire.call("Spawn", handle=handle, script=writer)["job_id"]
    received, end = wire.stream_count(handle, job)
    took = time.perf_counter() - started
    if received != size or end.get("exit_status") != 0:
        raise RuntimeError(f"{writer}: streamed {received} of {size} bytes, exit status {end.get('exit_status')}")
    return size / MIB / took


def _through_pipe(writer: str, size: int) -> float:
    started = time.perf_counter()
    subprocess.run(["sh", "-c", f"{writer} | cat >/dev/null"], check=True, timeout=600)
    return size / MIB / (time.perf_counter() - started)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _ratio(sides: dict[str, float | None]) -> float | None:
    return round(sides["warden"] / sides["pipe"], 3) if sides["warden"] and sides["pipe"] else None


def _rounded(values: list[float]) -> list[float]:
    return [round(x, 1) for x in values]
