"""The insecure backend: no isolation, for development, tests and CI without root.

Jobs run as the server's own user in `<container>/root`; network, limits and bind
mounts are not available. Everything else (states, jobs, persistence, grace time)
behaves exactly as on Linux because it lives in the base class.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from .. import scripts
from ..errors import WardenError
from ..pool import PoolExhausted
from ..protocol import requests as rq
from . import holder
from .base import Container, JobRequest
from .jobs import Job

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def inside(root: Path, path: str) -> str:
    """A container path under `root`, as rsync wants it: a trailing `/` (copy the
    contents) is kept, and `..` cannot climb out of the container."""
    parts = [p for p in Path("/", path).parts[1:] if p not in ("", ".")]
    if ".." in parts:
        raise WardenError(f"path must not contain '..': {path}")
    result = str(root.joinpath(*parts))
    return result + "/" if path.endswith("/") or not parts else result


class InsecureContainer(Container):
    backend = "insecure"

    @property
    def root(self) -> Path:
        return self.path / "root"

    def script(self, name: str) -> str:
        return str(self.ctx.root_path / name)

    async def do_create(self, request: rq.CreateRequest) -> None:
        await scripts.run([self.script("create.sh"), str(self.path)])

    async def do_stop(self, kill: bool) -> None:
        argv = [str(self.path / "stop.sh")]
        if kill:
            argv += ["-w", "0"]
        await scripts.run(argv)

    async def start_job(self, job: Job, request: JobRequest) -> None:
        await holder.start(self.job_argv(job, request), self.job_env())

    def job_argv(self, job: Job, request: JobRequest) -> list[str]:
        argv = holder.iomux_spawn_argv(self.path / "bin", job, self.ctx.config.server, "-C", str(self.root))
        rlimits = holder.merge_rlimits(self.ctx.config.server.container_rlimits, request.rlimits)
        for name, value in sorted(rlimits.items()):
            argv += ["-r", f"{name}={value}"]
        return [*argv, str(job.dir), "--", "/bin/bash"]

    def job_env(self) -> dict[str, str]:
        return {"HOME": str(self.root), "PATH": DEFAULT_PATH, "LANG": holder.job_lang(), "USER": _user()}

    async def net_in(self, request: rq.NetInRequest) -> dict[str, int]:
        """No forwarding without a network namespace: a port from the pool, as upstream."""
        try:
            port = self.ctx.ports.acquire_port()
        except PoolExhausted as exc:
            raise WardenError(str(exc)) from None
        self.res.ports.append(port)
        self.res.net_in.append([port, port])
        self.write_snapshot()
        return {"host_port": port, "container_port": port}

    async def copy_in(self, request: rq.CopyInRequest) -> None:
        await scripts.run(["rsync", "-r", "-p", "--links", request.src_path, inside(self.root, request.dst_path)])

    async def copy_out(self, request: rq.CopyOutRequest) -> None:
        await scripts.run(["rsync", "-r", "-p", "--links", inside(self.root, request.src_path), request.dst_path])
        if request.owner:
            await scripts.run(["chown", "-R", request.owner, request.dst_path])


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
