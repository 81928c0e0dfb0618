"""Starting jobs in a Linux container, and where their output goes.

wshd, already the container's PID 1, holds a job itself, so a Spawn starts no
process on the host. Jobs with a log_tag go through `iomux-spawn` instead,
which can reach the host's syslog socket (wshd, after pivot_root, cannot).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .. import holder
from ..jobs import Job, remove_linked_output
from . import wshd

if TYPE_CHECKING:
    from ..base import Container, JobRequest

JOB_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def job_user(request: JobRequest) -> str:
    """Privileged jobs run as the container's root, others as its vcap user."""
    return "root" if request.privileged else "vcap"


class Jobs:
    def __init__(self, container: Container) -> None:
        self.container = container
        # Cleared when this container's wshd turns out to predate output descriptors.
        self._wshd_takes_output_fd = True

    @property
    def path(self) -> Path:
        return self.container.path

    @property
    def socket(self) -> str:
        return str(self.path / "run" / "wshd.sock")

    @property
    def output_dir(self) -> Path:
        return self.path / "job-output"

    async def start(self, job: Job, request: JobRequest) -> None:
        if job.log_tag is None:
            try:
                return await self._start_in_wshd(job, request)
            except wshd.JobModeUnsupported:
                remove_linked_output(job.dir)  # a container started by an older wshd
        await holder.start(self.iomux_argv(job, request), self.iomux_env(request))

    async def _start_in_wshd(self, job: Job, request: JobRequest) -> None:
        spawn = functools.partial(
            wshd.spawn_job, self.socket, job.id,
            user=job_user(request),
            env={"LANG": holder.job_lang()},
            rlimits=self.rlimits(request),
            output_limit=self.container.ctx.config.server.job_output_limit,
            discard_output=job.discard_output,
        )
        if job.discard_output or not self._wshd_takes_output_fd:
            await spawn()
            return
        output_fd = self._open_output(job)
        try:
            await spawn(output_fd=output_fd)
        except wshd.OutputFdUnsupported:
            # This wshd writes output into the job directory itself (and is
            # not asked again until the server restarts).
            self._wshd_takes_output_fd = False
            remove_linked_output(job.dir)
            await spawn()
        finally:
            os.close(output_fd)

    def _open_output(self, job: Job) -> int:
        """The job's output file, on the depot's disk, linked as `output` from the
        job directory (on a tmpfs when setup.sh could mount one): wshd, in the
        container's memory cgroup, writes it, and tmpfs pages would count
        against the container's memory limit with no way to reclaim them, so a
        chatty job could get its container killed. Page cache is written back
        and reclaimed instead."""
        path = self.output_dir / str(job.id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            self.output_dir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, flags, 0o600)
        try:
            os.symlink(path, job.dir / "output")
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        return fd

    def sweep_outputs(self, job_ids: set[int]) -> None:
        """Remove output files that no job refers to (after recovery adopted the jobs)."""
        try:
            names = os.listdir(self.output_dir)
        except FileNotFoundError:
            return
        for name in names:
            if not name.isdigit() or int(name) not in job_ids:
                (self.output_dir / name).unlink(missing_ok=True)

    def rlimits(self, request: JobRequest) -> dict[str, int]:
        return holder.merge_rlimits(self.container.ctx.config.server.container_rlimits, request.rlimits)

    def iomux_argv(self, job: Job, request: JobRequest) -> list[str]:
        """The iomux path (log_tag jobs): iomux-spawn holds wsh, which runs the job."""
        server = self.container.ctx.config.server
        return [*holder.iomux_spawn_argv(self.path / "bin", job, server),
                str(job.dir), "--", str(self.path / "bin" / "wsh"), "--socket", self.socket,
                "--user", job_user(request), "/bin/bash"]

    def iomux_env(self, request: JobRequest) -> dict[str, str]:
        env = {"LANG": holder.job_lang(), "PATH": JOB_PATH}
        for name, value in self.rlimits(request).items():
            env[f"RLIMIT_{name.upper()}"] = str(value)
        return env
