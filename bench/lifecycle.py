"""lifecycle: Create + Destroy of a container (Linux backend, full networking)
against the kernel-only reference script (bench/reference.sh create + destroy)
and `crun run` / `runc run` of /bin/true (create + start + wait + delete) and
`lxc-execute` of /bin/true.

Interleaved rounds, as in run_true. One sample = Create + Destroy; the split
is kept for the table.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .oci import Peer
from .run_true import sample_rounds
from .server import BenchServer
from .settings import Settings
from .stats import median_of, ratio, summary
from .wire import frame

REFERENCE = Path(__file__).resolve().parent / "reference.sh"
KEYS = {"warden": "warden_ms", "reference": "reference_ms", "crun": "crun_run_ms", "runc": "runc_run_ms",
        "lxc": "lxc_execute_ms"}


class Reference:
    """bench/reference.sh, with its own /24 of addresses (a /30 per container)."""

    def __init__(self, base: Path, rootfs: str, network: str) -> None:
        self.dir = base / "reference"
        self.env = {**os.environ, "WB_DIR": str(self.dir), "WB_ROOTFS": rootfs}
        self.subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(
            ipaddress.ip_network(network).subnets(new_prefix=30))
        self.count = 0
        self.ready = False

    def _sh(self, *args: str, env: dict[str, str] | None = None) -> float:
        started = time.perf_counter()
        done = subprocess.run([str(REFERENCE), *args], env=env or self.env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"reference.sh {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        return took

    def setup(self) -> None:
        self._sh("setup")
        self.ready = True

    def create(self) -> tuple[str, float]:
        subnet = self.subnets[self.count % len(self.subnets)]
        self.count += 1
        rid = f"r{self.count}"
        hosts = list(subnet.hosts())
        env = {**self.env, "WB_HOST_IP": str(hosts[0]), "WB_CONTAINER_IP": str(hosts[1])}
        try:
            return rid, self._sh("create", rid, env=env)
        except Exception:
            try:
                self._sh("destroy", rid)
            except Exception:  # noqa: BLE001 - teardown() removes the rest
                pass
            raise

    def destroy(self, rid: str) -> float:
        return self._sh("destroy", rid)

    def teardown(self) -> list[str]:
        if not self.dir.exists() and not self.ready:
            return []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._sh("teardown")
        except Exception as exc:  # noqa: BLE001
            return [str(exc)]
        return []


def run(server: BenchServer, peers: dict[str, Peer], reference: Reference,
        settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    result: dict[str, Any] = {}
    split: dict[str, dict[str, list[float]]] = {"warden": {"create": [], "destroy": []},
                                                "reference": {"create": [], "destroy": []}}
    samplers: dict[str, Callable[[], float]] = {}
    wire = server.connect()

    def warden_once() -> float:
        started = time.perf_counter()
        handle = server.create(wire)
        created = time.perf_counter()
        wire.call_raw(frame("Destroy", handle=handle), "Destroy")
        done = time.perf_counter()
        split["warden"]["create"].append(created - started)
        split["warden"]["destroy"].append(done - created)
        return done - started

    def reference_once() -> float:
        rid, create = reference.create()
        destroy_ = reference.destroy(rid)
        split["reference"]["create"].append(create)
        split["reference"]["destroy"].append(destroy_)
        return create + destroy_

    samplers["warden"] = warden_once
    try:
        if not reference.ready:
            reference.setup()
        samplers["reference"] = reference_once
    except Exception as exc:  # noqa: BLE001
        result["reference_ms_error"] = f"reference.sh setup failed: {exc}"
    for name in ("crun", "runc", "lxc"):
        peer = peers[name]
        if peer.error:
            result[KEYS[name] + "_error"] = peer.error
            continue
        try:
            cid = peer.next_id("run")
            bundle = peer.bundle("run-bundle", ["/bin/true"], cid)
        except Exception as exc:  # noqa: BLE001
            result[KEYS[name] + "_error"] = f"{name} spec failed: {exc}"
            continue
        samplers[name] = functools.partial(peer.seconds, "run", cid=cid, bundle=bundle)
    try:
        warmup = max(1, settings.warmup // 5)
        samples, cold = sample_rounds(samplers, warmup, settings.lifecycle_iterations, result, KEYS,
                                      burst=settings.lifecycle_burst)
    finally:
        wire.close()
    for name, key in KEYS.items():
        result[key] = summary(samples.get(name, []))
    result["ratio_vs_reference"] = ratio(median_of(result["warden_ms"]), median_of(result["reference_ms"]))
    if result["ratio_vs_reference"] is None:
        result["ratio_vs_reference_error"] = "no reference samples" if result["warden_ms"] else "no warden samples"
    details: dict[str, Any] = {"cold": {name: summary(v) for name, v in cold.items()},
                               "burst": settings.lifecycle_burst}
    for name, parts in split.items():
        # The split lists hold every run (warm-up and cold ones too).
        details[name] = {part: summary(values) for part, values in parts.items()}
    return result, details
