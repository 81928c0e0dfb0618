"""run_true: a Run of /bin/true on an existing container, through a client round
trip, against `crun exec`, `runc exec` and `lxc-attach` of /bin/true into a
running container.

Rounds interleave the peers (warden, crun, runc, warden, ...), so the noise of a
shared machine lands on all of them alike.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from .oci import Peer
from .server import BenchServer
from .settings import Settings
from .stats import median_of, ratio, summary
from .wire import frame

KEYS = {"warden": "warden_ms", "crun": "crun_exec_ms", "runc": "runc_exec_ms", "lxc": "lxc_attach_ms"}


def run(server: BenchServer, peers: dict[str, Peer], settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    result: dict[str, Any] = {}
    samplers: dict[str, Callable[[], float]] = {}
    cleanups: list[Callable[[], object]] = []
    wire = server.connect()
    try:
        handle = server.create(wire)
        cleanups.append(lambda: wire.call("Destroy", handle=handle))
        request = frame("Run", handle=handle, script="/bin/true")

        def warden_once() -> float:
            started = time.perf_counter()
            payload = wire.call_raw(request, "Run")
            took = time.perf_counter() - started
            if payload.get("exit_status") != 0:
                raise RuntimeError(f"Run /bin/true exited {payload.get('exit_status')}: {payload.get('stderr')!r}")
            return took

        samplers["warden"] = warden_once
        for name in ("crun", "runc", "lxc"):
            peer = peers[name]
            if peer.error:
                result[KEYS[name] + "_error"] = peer.error
                continue
            try:
                cid = peer.next_id("exec")
                peer.request("start", cid=cid, bundle=peer.bundle("exec-bundle", ["/bin/sleep", "infinity"], cid))
            except Exception as exc:  # noqa: BLE001 - recorded as the peer's error
                result[KEYS[name] + "_error"] = f"{name}: starting a container (sleep infinity) failed: {exc}"
                continue
            cleanups.append(functools.partial(peer.request, "delete", cid=cid))
            samplers[name] = functools.partial(peer.seconds, "exec", cid=cid)

        samples, cold = sample_rounds(samplers, settings.warmup, settings.iterations, result, KEYS,
                                      burst=settings.burst)
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - the leak check will tell
                result.setdefault("cleanup_problems", []).append(str(exc))
        wire.close()
    for name, key in KEYS.items():
        result[key] = summary(samples.get(name, []))
    result["ratio_vs_crun"] = ratio(median_of(result["warden_ms"]), median_of(result["crun_exec_ms"]))
    if result["ratio_vs_crun"] is None:
        result["ratio_vs_crun_error"] = "no crun exec samples" if result["warden_ms"] else "no warden samples"
    problems = result.pop("cleanup_problems", [])
    return result, {"cleanup_problems": problems, "cold": {name: summary(v) for name, v in cold.items()},
                    "burst": settings.burst}


def sample_rounds(samplers: dict[str, Callable[[], float]], warmup: int, iterations: int,
                  result: dict[str, Any], keys: dict[str, str],
                  burst: int = 1) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Interleaved rounds until each peer has `iterations` samples; a sampler that
    fails is dropped and its error recorded.

    With burst > 1 each peer runs `burst` times in a row per round and the first
    run of each burst is kept apart ("cold"), not among the samples: on this
    kernel (cgroup v1) a cgroup migration -- `crun exec`/`runc exec` joining the
    container's cgroups -- waits for an RCU grace period (~25 ms here) unless
    another migration happened just before, so an exec after a pause costs
    ~3x one right after another. The samples are the warm, back-to-back runs,
    the fastest each peer does: the strict comparison for warden."""
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    cold: dict[str, list[float]] = {name: [] for name in samplers}
    active = dict(samplers)
    per_round = max(1, burst - 1) if burst > 1 else 1
    rounds = warmup + -(-iterations // per_round)
    for round_ in range(rounds):
        for name, sampler in list(active.items()):
            for i in range(burst):
                try:
                    took = sampler()
                except Exception as exc:  # noqa: BLE001 - recorded as that peer's error
                    result[keys[name] + "_error"] = f"{type(exc).__name__}: {exc}"
                    del active[name]
                    break
                if round_ < warmup:
                    continue
                if burst > 1 and i == 0:
                    cold[name].append(took)
                elif len(samples[name]) < iterations:
                    samples[name].append(took)
    return samples, cold
