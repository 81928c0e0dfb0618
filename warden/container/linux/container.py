"""The Linux container: a wshd init in its own namespaces, on an overlay of the
shared rootfs, in its own cgroups, behind a veth pair and iptables chains.

`LinuxContainer` is the glue: the state machine comes from `Container`, and
each kernel concept is a part it composes: `cgroups`, `net`, `disk`, `files`
and `jobs`, each running its scripts through one `Shell`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from ...errors import WardenError
from ...protocol import requests as rq
from ..base import Container, JobRequest
from ..context import Context
from ..jobs import Job
from .cgroups import Cgroups, layout_of
from .disk import Disk
from .files import Files
from .jobs import Jobs
from .net import Net
from .shell import Shell, container_env


class LinuxContainer(Container):
    backend = "linux"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shell = Shell(self.ctx.root_path, self.path)
        self.cgroups = Cgroups(self, self.shell, layout_of(self.ctx.depot).driver(self.id))
        self.net = Net(self, self.shell)
        self.disk = Disk(self, self.shell)
        self.files = Files(self)
        self.job_starter = Jobs(self)

    # ---- host setup and recovery ----------------------------------------------------

    @classmethod
    async def setup(cls, ctx: Context) -> None:
        config = ctx.config
        if not (ctx.root_path / "setup.sh").exists():
            return
        try:
            await Shell(ctx.root_path, ctx.depot).run_host("setup.sh", env={
                "POOL_NETWORK": config.network.pool_network,
                "ALLOW_NETWORKS": " ".join(config.network.allow_networks),
                "ALLOW_HOST_ACCESS": "true" if config.network.allow_host_access else "false",
                "CONTAINER_ROOTFS_PATH": config.server.container_rootfs_path,
                "CONTAINER_DEPOT_PATH": config.server.container_depot_path,
                "DISK_QUOTA_ENABLED": "true" if config.server.disk_quota_enabled else "false",
            }, timeout=600)
        except WardenError as exc:
            raise WardenError(f"root/linux/setup.sh failed: {exc.data or exc.message}") from None
        layout_of.cache_clear()  # setup.sh has just recorded it

    @classmethod
    def alive(cls, path: Path) -> bool:
        """A container lives while its wshd answers on run/wshd.sock."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(2)
            try:
                probe.connect(str(path / "run" / "wshd.sock"))
            except OSError:
                return False
        return True

    async def restore(self) -> None:
        await self.net.restore()
        await self.cgroups.restore()

    # ---- lifecycle --------------------------------------------------------------------

    @property
    def rootfs(self) -> str:
        return self.res.rootfs or self.ctx.config.server.container_rootfs_path

    async def do_create(self, request: rq.CreateRequest) -> None:
        if request.rootfs is not None:
            if not Path(request.rootfs).is_dir():
                raise WardenError(f"rootfs {request.rootfs} not found")
            self.res.rootfs = request.rootfs
        elif not Path(self.rootfs).is_dir():
            raise WardenError(f"rootfs {self.rootfs} not found")
        self.files.record_bind_mounts(request.bind_mounts)
        await self.disk.prepare()
        env = self._create_env()
        if not self.res.bind_mounts:
            env["START"] = "1"  # create.sh starts the container too: one process fewer
        await self.shell.run_host("create.sh", str(self.path), env=env)
        if self.res.bind_mounts:
            self.files.write_bind_mounts()
            await self.shell.run("start.sh")

    def _create_env(self) -> dict[str, str]:
        config = self.ctx.config
        assert self.res.subnet is not None and self.res.uid is not None
        return container_env(self.id, self.res.subnet, self.res.uid, self.rootfs,
                             nested=config.server.allow_nested_warden, mtu=config.network.mtu,
                             dns_servers=config.network.dns_servers,
                             pids_limit=config.server.container_pids_limit)

    async def do_stop(self, kill: bool) -> None:
        await self.shell.run("stop.sh", *(["-w", "0"] if kill else []))

    async def after_stop(self) -> None:
        self.cgroups.stop_oom_watch()

    async def do_destroy(self) -> None:
        # destroy.sh kills wshd, PID 1 of the container: every process goes with it.
        self.cgroups.stop_oom_watch()
        await super().do_destroy()

    def has_processes(self) -> bool:
        """Anything in the container besides wshd (jobs, or what they left running)?"""
        count = self.cgroups.process_count()
        return super().has_processes() if count is None else count > 1

    # ---- jobs ---------------------------------------------------------------------

    async def start_job(self, job: Job, request: JobRequest) -> None:
        await self.job_starter.start(job, request)

    @property
    def job_output_dir(self) -> Path:
        return self.job_starter.output_dir

    def sweep_job_outputs(self) -> None:
        self.job_starter.sweep_outputs(set(self.jobs))

    # ---- requests -------------------------------------------------------------------

    async def copy_in(self, request: rq.CopyInRequest) -> None:
        await self.files.copy_in(request)

    async def copy_out(self, request: rq.CopyOutRequest) -> None:
        await self.files.copy_out(request)

    async def net_in(self, request: rq.NetInRequest) -> dict[str, int]:
        return await self.net.net_in(request.host_port, request.container_port)

    async def net_out(self, request: rq.NetOutRequest) -> None:
        await self.net.net_out(request)

    async def limit_bandwidth(self, request: rq.LimitBandwidthRequest) -> dict[str, Any]:
        return await self.net.limit_bandwidth(request.rate, request.burst)

    async def limit_memory(self, request: rq.LimitMemoryRequest) -> dict[str, Any]:
        return await self.cgroups.limit_memory(request.limit_in_bytes)

    async def limit_cpu(self, request: rq.LimitCpuRequest) -> dict[str, Any]:
        return await self.cgroups.limit_cpu(request.limit_in_shares)

    async def limit_disk(self, request: rq.LimitDiskRequest) -> dict[str, Any]:
        return await self.disk.limit_disk(request)

    async def do_info(self, live: bool = True) -> dict[str, Any]:
        """Stats from the cgroup files; with `live`, also bandwidth read back from tc
        and disk usage (each a script run). The info embedded in Link/Run/Stream
        answers is not live: it reports the limits as applied, and costs no process."""
        info = self.cgroups.stats()
        if not live:
            info["bandwidth_stat"] = self.net.bandwidth_as_applied()
            return info
        info["bandwidth_stat"] = await self.net.bandwidth_stat()
        disk = await self.disk.disk_stat()
        if disk is not None:
            info["disk_stat"] = disk
        return info
