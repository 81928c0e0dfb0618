"""Start, stop, crash and restart a real warden server for integration tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..support import wait_for
from .wire import Wire

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def holder_pids(depot: Path) -> list[int]:
    """Processes still running whose command line mentions the depot (job holders)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(depot).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


_networks = iter(range(200, 240))


class ServerProcess:
    """One warden server on its own socket, depot, ports and /24 of container
    addresses, in a short /tmp path (Unix socket paths are limited to 108 bytes)."""

    def __init__(self, backend: str = "insecure", **overrides: Any) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="wt-", dir="/tmp"))
        self.socket_path = str(self.base / "w.sock")
        self.depot = self.base / "depot"
        self.log_path = self.base / "server.log"
        self.config_path = self.base / "config.yml"
        self.config: dict[str, Any] = {
            "server": {
                "backend": backend,
                "unix_domain_path": self.socket_path,
                "container_depot_path": str(self.depot),
                "container_grace_time": None,
                "pidfile": str(self.base / "warden.pid"),
            },
            "health_check_server": {"port": free_port()},
            "logging": {"level": "debug", "file": str(self.log_path)},
            "network": {"pool_network": "10.254.0.0/24" if backend == "insecure"
                        else f"10.254.{next(_networks)}.0/24", "release_delay": 0},
        }
        if backend == "linux":
            self.config["server"]["container_rootfs_path"] = os.environ.get(
                "WARDEN_TEST_ROOTFS", "/var/lib/warden/rootfs")
        for section, values in overrides.items():
            self.config.setdefault(section, {}).update(values)
        self.proc: subprocess.Popen | None = None

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    def start(self, timeout: float = 30) -> ServerProcess:
        self.write_config()
        with open(self.base / "server.stderr", "ab") as stderr:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "warden.server", "--config", str(self.config_path)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.stderr()}{self.log()[-3000:]}")
            if not Path(self.config["server"]["pidfile"]).exists():
                return False
            try:
                Wire(self.socket_path, timeout=5).close()
            except OSError:
                return False
            return True

        wait_for(listening, timeout, what="the server to listen")
        return self

    def stderr(self) -> str:
        try:
            return (self.base / "server.stderr").read_text()
        except OSError:
            return ""

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def connect(self) -> Wire:
        return Wire(self.socket_path)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        finally:
            pass

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
                self.signal(signal.SIGTERM)
                try:
                    self.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            clear = ROOT / "root" / self.config["server"]["backend"] / "clear.sh"
            if self.depot.exists():
                env = dict(os.environ, POOL_NETWORK=self.config["network"]["pool_network"])
                subprocess.run([str(clear), str(self.depot)], capture_output=True, timeout=120, env=env)
            leftovers = holder_pids(self.depot)
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shutil.rmtree(self.base, ignore_errors=True)
            assert not leftovers, f"processes left behind by the test: {leftovers}"
