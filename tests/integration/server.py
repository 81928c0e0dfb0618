"""Start, stop, crash and restart a real warden server for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from warden.server import process
from warden.server.process import free_port

from .wire import Wire

ROOT = Path(__file__).resolve().parents[2]


_networks = iter(range(200, 240))


class ServerProcess(process.ServerProcess):
    """One warden server on its own socket, depot, ports and /24 of container
    addresses, in a short /tmp path (Unix socket paths are limited to 108 bytes)."""

    def __init__(self, backend: str = "insecure", **overrides: Any) -> None:
        base = Path(tempfile.mkdtemp(prefix="wt-", dir="/tmp"))
        self.depot = base / "depot"
        self.log_path = base / "server.log"
        config: dict[str, Any] = {
            "server": {
                "backend": backend,
                "unix_domain_path": str(base / "w.sock"),
                "container_depot_path": str(self.depot),
                "container_grace_time": None,
                "pidfile": str(base / "warden.pid"),
            },
            "health_check_server": {"port": free_port()},
            "logging": {"level": "debug", "file": str(self.log_path)},
            "network": {"pool_network": "10.254.0.0/24" if backend == "insecure"
                        else f"10.254.{next(_networks)}.0/24", "release_delay": 0},
        }
        if backend == "linux":
            config["server"]["container_rootfs_path"] = os.environ.get(
                "WARDEN_TEST_ROOTFS", "/var/lib/warden/rootfs")
        for section, values in overrides.items():
            config.setdefault(section, {}).update(values)
        super().__init__(base, config)

    def start(self, timeout: float = 30) -> ServerProcess:
        try:
            return super().start(timeout)
        except process.ServerStartError as exc:
            raise AssertionError(str(exc)) from None

    def connect(self) -> Wire:
        return Wire(self.socket_path)

    def drain(self) -> int:
        self.signal(signal.SIGUSR2)
        return self.wait()

    def crash(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait()

    def restart(self) -> ServerProcess:
        return self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        """Destroy every container, stop the server, and make sure no job outlives it."""
        try:
            if self.running:
                with self.connect() as wire:
                    for handle in wire.call("List")["handles"]:
                        try:
                            wire.call("Stop", handle=handle, kill=True)
                            wire.call("Destroy", handle=handle)
                        except Exception:  # noqa: BLE001 - cleanup continues; clear.sh follows
                            pass
                self.terminate(30)
        finally:
            clear = ROOT / "root" / self.config["server"]["backend"] / "clear.sh"
            if self.depot.exists():
                env = dict(os.environ, POOL_NETWORK=self.config["network"]["pool_network"])
                subprocess.run([str(clear), str(self.depot)], capture_output=True, timeout=120, env=env)
            leftovers = process.pids_mentioning(self.depot)
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shutil.rmtree(self.base, ignore_errors=True)
            assert not leftovers, f"processes left behind by the test: {leftovers}"
