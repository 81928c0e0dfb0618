"""A warden server of the bench's own: own socket, depot, pools and health port.

Started by warden.server.process like the tests' servers, with two differences that matter on
a machine where other servers (test runs) may be up at the same time:
- the pools default to 10.253.x.x and uids from 40000, away from the tests';
- cleanup is scoped to this server: each container of its depot goes through
  root/linux/destroy.sh, its disk pool is unmounted and deleted, and
  `net.sh teardown` runs with POOL_NETWORK set, so only this pool's iptables
  rules go. (root/linux/clear.sh would also remove the kernel objects of every
  other server's containers and, without POOL_NETWORK, every warden-* chain.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

from warden.server.process import ServerProcess, free_port, pids_mentioning

from .wire import Wire, frame

ROOT = Path(__file__).resolve().parents[1]
LINUX = ROOT / "root" / "linux"
CGROUP_ROOT = Path("/sys/fs/cgroup")
DEFAULT_ROOTFS = "/var/lib/warden/rootfs"
CREATE = frame("Create")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (or another /proc/<pid>/status field, e.g. VmHWM, the peak) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _deep_update(target: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


class BenchServer(ServerProcess):
    def __init__(self, base: Path, *, pool_network: str, uid_pool: tuple[int, int] = (40000, 300),
                 rootfs: str = DEFAULT_ROOTFS, log_level: str = "info",
                 overrides: dict[str, Any] | None = None) -> None:
        base = base / "server"
        base.mkdir(parents=True)
        self.depot = base / "depot"
        self.depot.mkdir()
        self.log_path = base / "server.log"
        self.pool_network = pool_network
        config: dict[str, Any] = {
            "server": {
                "backend": "linux",
                "unix_domain_path": str(base / "w.sock"),
                "container_depot_path": str(self.depot),
                "container_rootfs_path": rootfs,
                "container_grace_time": None,
                "pidfile": str(base / "warden.pid"),
            },
            "health_check_server": {"port": free_port()},
            "logging": {"level": log_level, "file": str(self.log_path)},
            "network": {"pool_network": pool_network, "release_delay": 0},
            "user": {"pool_start_uid": uid_pool[0], "pool_size": uid_pool[1]},
        }
        _deep_update(config, overrides or {})
        super().__init__(base, config)
        # Every handle Create returned (no handle is ever asked for, so these are
        # the container ids too): how leaks are told apart from other servers'.
        self.created: set[str] = set()
        self.warden_parents_before = {p for p in CGROUP_ROOT.glob("*/warden") if p.is_dir()}

    def start(self, timeout: float = 120) -> Self:
        return super().start(timeout)

    def connect(self, timeout: float | None = 600) -> Wire:
        return Wire(self.socket_path, timeout=timeout)

    def create(self, wire: Wire) -> str:
        handle: str = wire.call_raw(CREATE, "Create")["handle"]
        self.created.add(handle)
        return handle

    # ---- cleanup -----------------------------------------------------------------

    def stop(self) -> list[str]:
        """Destroy every container, stop the server, remove what is left of this
        server in the kernel. Returns problems met (the caller reports them)."""
        problems: list[str] = []
        try:
            if self.running:
                assert self.proc is not None
                try:
                    with self.connect(timeout=120) as wire:
                        for handle in wire.call("List")["handles"]:
                            try:
                                wire.call("Destroy", handle=handle)
                            except Exception as exc:  # noqa: BLE001 - destroy.sh follows
                                problems.append(f"Destroy {handle}: {exc}")
                except OSError as exc:
                    problems.append(f"cannot reach the server to destroy containers: {exc}")
                if not self.terminate(60):
                    problems.append("server did not exit on SIGTERM; killed")
        finally:
            problems += self._clear()
        return problems

    def _run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str | None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/",
                                  env={**os.environ, **(env or {})})
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{argv[0]}: {exc}"
        if done.returncode != 0:
            return f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-500:]}"
        return None

    def _clear(self) -> list[str]:
        problems: list[str] = []
        if self.depot.exists():
            for entry in sorted(self.depot.iterdir()):
                if entry.is_dir() and entry.name != "tmp" and not entry.name.startswith((".disk", ".jobs")):
                    problems.append(f"container left in the depot: {entry.name}")
                    if (err := self._run([str(LINUX / "destroy.sh"), str(entry)])):
                        problems.append(err)
            problems += self._remove_disk_pool()
        # This pool's rules only; the shared chains go once no pool uses them.
        if (err := self._run([str(LINUX / "net.sh"), "teardown"], {"POOL_NETWORK": self.pool_network})):
            problems.append(err)
        for parent in CGROUP_ROOT.glob("*/warden"):
            if parent not in self.warden_parents_before:
                try:
                    parent.rmdir()  # only when empty: another server may be using it
                except OSError:
                    pass
        for pid in pids_mentioning(self.base):
            problems.append(f"process {pid} still refers to {self.base}; killed")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.base, ignore_errors=True)
        return problems

    def _remove_disk_pool(self) -> list[str]:
        """What root/linux/clear.sh does for an empty depot, for this depot only."""
        problems: list[str] = []
        jobs = self.depot / ".jobs"  # the job directories' tmpfs
        if _is_mounted(jobs) and (err := self._run(["umount", str(jobs)])):
            problems.append(err)
        try:
            jobs.rmdir()
        except OSError:
            pass
        pool = self.depot / ".disk"
        image = self.depot / ".disk.img"
        if _is_mounted(pool) and (err := self._run(["umount", str(pool)])):
            problems.append(err)
        if image.exists():
            for attempt in range(60):
                out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True).stdout
                devices = [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]
                if not devices:
                    break
                if attempt == 10:
                    subprocess.run(["losetup", "-d", *devices], capture_output=True)
                time.sleep(0.05)
            else:
                problems.append(f"loop device of {image} still attached (a mount namespace holds it)")
            image.unlink(missing_ok=True)
        try:
            pool.rmdir()
        except OSError:
            pass
        return problems


def _is_mounted(path: Path) -> bool:
    target = str(path)
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 1 and parts[1] == target:
                return True
    except OSError:
        pass
    return False


def make_base() -> Path:
    """A short /tmp dir (Unix socket paths are limited to 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="wb-", dir="/tmp"))
