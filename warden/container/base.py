"""The container: state machine, resources, snapshot, grace timer and jobs.

Backends (`insecure`, `linux`) subclass `Container` and implement the `do_*`
methods that touch the system; everything a client can observe about states,
errors, jobs and persistence lives here, once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, ClassVar

from .. import scripts
from ..errors import NotImplementedByBackend, StateError, WardenError
from ..pool import PoolExhausted, Subnet
from . import ids
from .context import Context
from .jobs import Job, close_result, finished_output

log = logging.getLogger("warden.container")

BORN, ACTIVE, STOPPED, DESTROYED = "born", "active", "stopped", "destroyed"
OUT_OF_MEMORY = "out of memory"
OUTPUT_EXCEEDED = "command exceeded maximum output"
SNAPSHOT = "snapshot.json"


@dataclass
class Resources:
    """What a container holds and gives back on destroy; persisted in the snapshot."""

    container_id: str
    handle: str
    subnet: Subnet | None = None
    uid: int | None = None
    ports: list[int] = field(default_factory=list)
    net_in: list[list[int]] = field(default_factory=list)
    net_out: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    bind_mounts: list[dict[str, str]] = field(default_factory=list)
    rootfs: str | None = None


class Container:
    backend: ClassVar[str] = "base"

    def __init__(self, ctx: Context, resources: Resources, path: Path, grace_time: int | None) -> None:
        self.ctx = ctx
        self.res = resources
        self.path = path
        self.grace_time = grace_time
        self.state = BORN
        self.events: list[str] = []
        self.jobs: dict[int, Job] = {}
        self.obituary: dict[str, Any] | None = None
        self.connections: set[object] = set()
        self._grace_timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self.log = logging.LoggerAdapter(log, {"handle": resources.handle})

    # ---- identity --------------------------------------------------------------

    @property
    def handle(self) -> str:
        return self.res.handle

    @property
    def id(self) -> str:
        return self.res.container_id

    def require(self, *allowed: str) -> None:
        if self.state not in allowed:
            raise StateError(allowed, self.state)

    def add_event(self, event: str) -> None:
        if event not in self.events:
            self.events.append(event)

    # ---- class-level hooks ---------------------------------------------------------

    @classmethod
    async def setup(cls, ctx: Context) -> None:
        """Prepare the host once at start-up (global scripts, mounts, chains)."""

    @classmethod
    def alive(cls, path: Path) -> bool:
        """Can a container found on disk still be used after a restart?"""
        return True

    # ---- create -----------------------------------------------------------------

    @classmethod
    async def create(cls, ctx: Context, request: dict[str, Any]) -> Container:
        container_id = ids.next_id()
        handle = request.get("handle")
        if handle is None:
            handle = container_id
        if handle in ctx.registry or handle in ctx.creating:
            raise WardenError(f"container with handle: {handle} already exists.")
        res = Resources(container_id=container_id, handle=handle)
        grace = request.get("grace_time")
        container = cls(
            ctx, res, ctx.depot / container_id,
            grace if grace is not None else ctx.config.server.container_grace_time,
        )
        try:
            res.subnet = ctx.networks.acquire_network(request.get("network"))
            res.uid = ctx.uids.acquire_uid()
        except PoolExhausted as exc:
            container.release()
            raise WardenError(str(exc)) from None
        ctx.creating.add(handle)
        try:
            await container.do_create(request)
        except BaseException:
            await container.cleanup_failed_create()
            raise
        finally:
            ctx.creating.discard(handle)
        container.state = ACTIVE
        ctx.registry[container.handle] = container
        container.write_snapshot()
        container.log.info("container created", extra={"data": {"id": container_id, "path": str(container.path)}})
        return container

    async def cleanup_failed_create(self) -> None:
        """A failed Create leaves nothing behind: kernel objects, files, pool entries."""
        try:
            await self.do_destroy()
        except Exception as exc:  # noqa: BLE001 - the original error is what the client needs
            self.log.error("cleanup after failed create failed", extra={"data": {"error": str(exc)}})
        self.release()

    def release(self) -> None:
        if self.res.subnet is not None:
            self.ctx.networks.release(self.res.subnet)
            self.res.subnet = None
        if self.res.uid is not None:
            self.ctx.uids.release(self.res.uid)
            self.res.uid = None
        for port in self.res.ports:
            self.ctx.ports.release(port)
        self.res.ports = []

    # ---- stop / destroy -------------------------------------------------------------

    async def stop(self, kill: bool = False) -> None:
        self.require(ACTIVE, STOPPED)
        if self.state == STOPPED:
            return
        async with self._lock:
            await self._stop(kill)

    async def _stop(self, kill: bool) -> None:
        self.state = STOPPED
        try:
            await self.do_stop(kill)
        finally:
            await self._wait_jobs()
            self.write_snapshot()
            await self.after_stop()

    def has_processes(self) -> bool:
        """Is anything running that a graceful stop should TERM first?"""
        return any(job.running for job in self.jobs.values())

    async def _wait_jobs(self) -> None:
        running = [job.wait() for job in self.jobs.values() if job.running]
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def destroy(self) -> None:
        async with self._lock:
            if self.state == DESTROYED:
                return
            try:
                # Costs no process: Link/Stream answers that outlive the container use it.
                self.obituary = await self.info(live=False)
            except Exception:  # noqa: BLE001 - best effort, as upstream
                self.obituary = None
            if self.state == ACTIVE and self.has_processes():
                # Jobs get their graceful TERM first, as on Stop.
                try:
                    await self._stop(kill=False)
                except WardenError as exc:
                    self.log.warning("stop before destroy failed", extra={"data": {"error": exc.message}})
            elif self.state == ACTIVE:
                self.state = STOPPED  # nothing to stop: no script to run
                await self.after_stop()
            self.delete_snapshot()
            try:
                await self.do_destroy()
            except BaseException:
                self.write_snapshot()  # still registered: a retry must find it after a restart too
                raise
            for job in self.jobs.values():
                job.cancel()
            self.release()
            self.state = DESTROYED
            self.cancel_grace_timer()
            if self.ctx.registry.get(self.handle) is self:
                del self.ctx.registry[self.handle]
            self.log.info("container destroyed")

    # ---- connections and grace time ----------------------------------------------------

    def register_connection(self, conn: object) -> None:
        self.cancel_grace_timer()
        self.connections.add(conn)

    def unregister_connection(self, conn: object) -> None:
        self.connections.discard(conn)
        self.arm_grace_timer()

    def arm_grace_timer(self) -> None:
        if self.grace_time is None or self.connections or self.state == DESTROYED:
            return
        self.cancel_grace_timer()
        loop = asyncio.get_running_loop()
        self._grace_timer = loop.call_later(self.grace_time, self._grace_expired)

    def cancel_grace_timer(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    def _grace_expired(self) -> None:
        self._grace_timer = None
        self.log.info("grace time expired, destroying")
        self.ctx.spawn_background(self._destroy_quietly())

    async def _destroy_quietly(self) -> None:
        try:
            await self.destroy()
        except Exception as exc:  # noqa: BLE001 - best effort; logged for the operator
            self.log.error("destroy after grace time failed", extra={"data": {"error": str(exc)}})

    # ---- snapshot -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        res = self.res
        return {
            "backend": self.backend,
            "state": self.state,
            "grace_time": self.grace_time,
            "events": self.events,
            "resources": {
                "container_id": res.container_id,
                "handle": res.handle,
                "network": str(res.subnet) if res.subnet else None,
                "uid": res.uid,
                "ports": res.ports,
                "net_in": res.net_in,
                "net_out": res.net_out,
                "limits": res.limits,
                "bind_mounts": res.bind_mounts,
                "rootfs": res.rootfs,
            },
        }

    def write_snapshot(self) -> None:
        """Atomic: a crash leaves either the old snapshot or the new one."""
        tmp_dir = self.path / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{SNAPSHOT}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.snapshot(), f)
        os.replace(tmp, self.path / SNAPSHOT)

    def delete_snapshot(self) -> None:
        try:
            (self.path / SNAPSHOT).unlink()
        except FileNotFoundError:
            pass

    # ---- info ---------------------------------------------------------------------

    async def info(self, live: bool = True) -> dict[str, Any]:
        self.require(ACTIVE, STOPPED)
        subnet = self.res.subnet
        info: dict[str, Any] = {
            "state": self.state,
            "events": list(self.events),
            "host_ip": str(subnet.host_ip) if subnet else None,
            "container_ip": str(subnet.container_ip) if subnet else None,
            "container_path": str(self.path),
            "job_ids": sorted(job.id for job in self.jobs.values() if job.running),
        }
        info.update(await self.do_info(live))
        return info

    async def info_or_obituary(self) -> dict[str, Any] | None:
        if self.state == DESTROYED:
            return self.obituary
        try:
            return await self.info(live=False)
        except WardenError:
            return self.obituary

    # ---- jobs ---------------------------------------------------------------------

    @property
    def jobs_dir(self) -> Path:
        return self.path / "jobs"

    def rlimits_for(self, requested: dict[str, Any] | None) -> dict[str, int]:
        """The config's rlimits with the request's on top, in a fresh dict (no leaks)."""
        merged = dict(self.ctx.config.server.container_rlimits)
        merged.update({k: v for k, v in (requested or {}).items() if v is not None})
        return merged

    async def spawn(self, request: dict[str, Any]) -> int:
        self.require(ACTIVE)
        job_id = self.ctx.job_ids.next()
        job = Job(job_id, self.jobs_dir / str(job_id), bool(request.get("discard_output")), request.get("log_tag"))
        job.dir.mkdir(parents=True)
        try:
            (job.dir / "script").write_bytes(request["script"])
            job.write_meta()
            await self.start_job(job, request)
        except BaseException:
            job.remove()
            raise
        self.jobs[job_id] = job
        job.watch(self._job_finished)
        self.log.debug("job spawned", extra={"data": {"job_id": job_id}})
        return job_id

    async def start_job(self, job: Job, request: dict[str, Any]) -> None:
        """Start the job's holder: an `iomux-spawn` daemon that outlives the server."""
        result = await scripts.run(self.job_argv(job, request), self.job_env(request), check=False, clean_env=True)
        if result.status != 0:
            detail = result.stderr.decode("utf-8", "replace").strip()
            raise WardenError("iomux-spawn failed", detail or None)

    def sweep_job_outputs(self) -> None:
        """At recovery, after the jobs were adopted: remove output kept outside
        the job directories that no job refers to (see LinuxContainer)."""

    def adopt_job(self, job: Job) -> None:
        self.jobs[job.id] = job
        job.watch(self._job_finished)

    def _job_finished(self, job: Job) -> None:
        if job.status is not None and job.status.limit_exceeded:
            self.add_event(OUTPUT_EXCEEDED)
            if self.state != DESTROYED:
                self.write_snapshot()

    def job(self, job_id: int) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise WardenError("no such job")
        return job

    def forget_job(self, job_id: int) -> None:
        """A job whose result reached a client is gone for good (`no such job`).

        The directory is renamed at once (recovery ignores it from then on) and
        removed in a worker thread: unlinking gigabytes of output takes a while."""
        job = self.jobs.pop(job_id, None)
        if job is not None and job.retire():
            asyncio.get_running_loop().run_in_executor(None, job.remove)

    async def link(self, job_id: int) -> dict[str, Any]:
        """The job's result. A large output comes as StreamBytes, to be sent
        from the file and closed by the caller (see `close_result`)."""
        job = self.job(job_id)
        output_file = job.open_output()
        try:
            status = await job.wait()
            stdout, stderr = finished_output(output_file) if output_file else (b"", b"")
        finally:
            if output_file:
                output_file.close()
        result = {"exit_status": status.exit_status, "stdout": stdout, "stderr": stderr}
        try:
            result["info"] = await self.info_or_obituary()
        except BaseException:
            close_result(result)
            raise
        return result

    async def stream(self, job_id: int) -> AsyncIterator[dict[str, Any]]:
        job = self.job(job_id)
        output_file = job.open_output()
        try:
            if output_file is not None:
                async for name, data in job.follow(output_file):
                    if data:
                        yield {"name": name, "data": data}
            status = await job.wait()
        finally:
            if output_file:
                output_file.close()
        yield {"exit_status": status.exit_status, "info": await self.info_or_obituary()}

    # ---- operations a backend implements ----------------------------------------------

    def job_argv(self, job: Job, request: dict[str, Any]) -> list[str]:
        raise NotImplementedByBackend()

    def iomux_spawn_argv(self, job: Job, *options: str) -> list[str]:
        """`iomux-spawn` with the job's stdin, output handling and syslog copy; the
        backend adds its own options, then `JOBDIR -- COMMAND`."""
        server = self.ctx.config.server
        argv = [str(self.path / "bin" / "iomux-spawn"), "-i", str(job.dir / "script"), *options]
        if job.discard_output:
            argv.append("-d")
        else:
            argv += ["-l", str(server.job_output_limit)]
        if job.log_tag is not None:
            argv += ["-t", f"warden.{job.log_tag}", "-s", server.syslog_socket or "/dev/log"]
        return argv

    def job_env(self, request: dict[str, Any]) -> dict[str, str]:
        return {}

    async def do_create(self, request: dict[str, Any]) -> None:
        raise NotImplementedByBackend()

    async def do_stop(self, kill: bool) -> None:
        raise NotImplementedByBackend()

    async def after_stop(self) -> None:
        """Runs after every stop (the OOM watcher ends here)."""

    async def do_destroy(self) -> None:
        raise NotImplementedByBackend()

    async def do_info(self, live: bool = True) -> dict[str, Any]:
        """Backend statistics; `live=False` asks for what costs no process start."""
        return {}

    async def restore(self) -> None:
        """Re-apply kernel state after a restart (net rules, limits)."""

    async def net_in(self, host_port: int | None, container_port: int | None) -> dict[str, int]:
        raise NotImplementedByBackend()

    async def net_out(self, request: dict[str, Any]) -> None:
        raise NotImplementedByBackend()

    async def copy_in(self, src_path: str, dst_path: str) -> None:
        raise NotImplementedByBackend()

    async def copy_out(self, src_path: str, dst_path: str, owner: str | None) -> None:
        raise NotImplementedByBackend()

    async def limit_memory(self, limit: int | None) -> dict[str, Any]:
        raise NotImplementedByBackend()

    async def limit_disk(self, request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedByBackend()

    async def limit_bandwidth(self, rate: int, burst: int) -> dict[str, Any]:
        raise NotImplementedByBackend()

    async def limit_cpu(self, shares: int | None) -> dict[str, Any]:
        raise NotImplementedByBackend()

