"""The LXC peer: `lxc-attach` into a running container and `lxc-execute`, driven
by the same kind of worker process as crun and runc (see oci.py), so that its
commands are timed alike and interleaved with the other peers.

Configs: the given rootfs read-only, a network namespace with only loopback
(`lxc.net.0.type = empty`), no AppArmor profile, and every cgroup (container,
monitor, LXC's pivot) under warden-bench-lxc/, which the cleanup removes.
Containers live in the peer's own lxcpath (`-P`), never in /var/lib/lxc.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from .oci import Worker, cgroup_parent

COMMANDS = ("lxc-start", "lxc-attach", "lxc-execute", "lxc-stop", "lxc-wait")


def missing() -> str | None:
    absent = [c for c in COMMANDS if shutil.which(c) is None]
    return f"{', '.join(absent)} not installed (apt-get install lxc)" if absent else None


def make_config(directory: Path, rootfs: str, args: list[str], cgroup_id: str) -> Path:
    """An LXC config running `args` as the container's init (for lxc-start)."""
    directory.mkdir(parents=True, exist_ok=True)
    parent = cgroup_parent("lxc")
    lines = [
        "lxc.uts.name = wbench",
        f"lxc.rootfs.path = dir:{rootfs}",
        "lxc.rootfs.options = ro",
        "lxc.net.0.type = empty",
        "lxc.apparmor.profile = unconfined",
        "lxc.mount.auto = proc:mixed sys:ro",
        "lxc.log.level = ERROR",
        f"lxc.cgroup.dir.container = {parent}/{cgroup_id}",
        f"lxc.cgroup.dir.monitor = {parent}/{cgroup_id}.monitor",
        f"lxc.cgroup.dir.monitor.pivot = {parent}/pivot",
        f"lxc.init.cmd = {' '.join(args)}",
    ]
    config = directory / "config"
    config.write_text("\n".join(lines) + "\n")
    return config


class LxcWorker(Worker):
    """The worker's operations (start, exec, run, delete, cleanup) with LXC's
    commands; the state directory is the lxcpath."""

    def __init__(self, state: Path) -> None:
        super().__init__("lxc", state)

    def _lxc(self, command: str, cid: str, *args: str) -> list[str]:
        return [command, "-P", str(self.state), "-n", cid, *args]

    def start(self, cid: str, bundle: str) -> dict[str, Any]:
        self.containers.add(cid)
        self._timed(self._lxc("lxc-start", cid, "-f", bundle, "-d"))
        self._timed(self._lxc("lxc-wait", cid, "-s", "RUNNING", "-t", "30"))
        return {}

    def exec(self, cid: str) -> dict[str, Any]:
        return {"seconds": self._timed(self._lxc("lxc-attach", cid, "--", "/bin/true"))}

    def run(self, cid: str, bundle: str) -> dict[str, Any]:
        """lxc-execute: set up, run /bin/true under LXC's init, tear down."""
        self.containers.add(cid)
        took = self._timed(self._lxc("lxc-execute", cid, "-f", bundle, "--", "/bin/true"))
        self.containers.discard(cid)
        return {"seconds": took}

    def delete(self, cid: str) -> dict[str, Any]:
        self._stop(cid)
        self.containers.discard(cid)
        return {}

    def _stop(self, cid: str) -> str | None:
        done = subprocess.run(self._lxc("lxc-stop", cid, "-k"), capture_output=True, text=True, timeout=60)
        shutil.rmtree(self.state / cid, ignore_errors=True)
        return None if done.returncode == 0 else done.stderr.strip()[-300:]

    def cleanup(self) -> dict[str, Any]:
        problems = []
        for cid in sorted(self.containers):
            error = self._stop(cid)
            if error and "is not running" not in error:
                problems.append(f"lxc-stop -k {cid}: {error}")
        self.containers.clear()
        return {"problems": problems + self.remove_cgroups()}
