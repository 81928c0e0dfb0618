"""A warden server in a child process: how the bench and the tests start one.

It writes the config, starts `python -m warden.server` with it, and waits until
the pidfile is there and the socket answers (the server writes its pidfile
only once recovery is done and it accepts clients). Cleanup is the caller's:
the bench and the tests scope it differently.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import yaml

ROOT = Path(__file__).resolve().parents[2]


class ServerStartError(RuntimeError):
    """The server exited or never answered; the message carries its stderr and log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pids_mentioning(needle: Path) -> list[int]:
    """Processes (not this one) whose command line mentions `needle`: job
    holders and wshds of a depot."""
    text = str(needle).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def socket_answers(path: str, timeout: float = 5) -> bool:
    """Does a server accept connections on the Unix socket `path`?"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


class ServerProcess:
    """One server, with its config in `base/config.yml`, its stderr in
    `base/server.stderr` and (when the config says so) its log in a file."""

    def __init__(self, base: Path, config: dict[str, Any]) -> None:
        self.base = base
        self.config = config
        self.config_path = base / "config.yml"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        path: str = self.config["server"]["unix_domain_path"]
        return path

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config))

    def start(self, timeout: float = 30) -> Self:
        self.write_config()
        with open(self.base / "server.stderr", "ab") as stderr:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "warden.server", "--config", str(self.config_path)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        pidfile = Path(self.config["server"]["pidfile"])
        deadline = time.monotonic() + timeout
        while not (pidfile.exists() and socket_answers(self.socket_path)):
            if self.proc.poll() is not None:
                raise ServerStartError(f"warden server exited with {self.proc.returncode}: "
                                       f"{self.stderr()[-2000:]}{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise ServerStartError(f"warden server did not listen within {timeout}s: {self.log()[-2000:]}")
            time.sleep(0.02)
        return self

    def stderr(self) -> str:
        try:
            return (self.base / "server.stderr").read_text()
        except OSError:
            return ""

    def log(self) -> str:
        path = self.config.get("logging", {}).get("file")
        try:
            return Path(path).read_text() if path else ""
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 30) -> bool:
        """SIGTERM (a drain), then SIGKILL after `timeout`; False if it had to be killed."""
        if not self.running:
            return True
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
            return False
