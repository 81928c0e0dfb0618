"""The container: its state machine, snapshot, grace timer and jobs.

Backends (`insecure`, `linux`) subclass `Container` and implement the `do_*`
methods and the operations that touch the system; everything a client can
observe about states, errors, jobs and persistence lives here, once. Requests
arrive typed (`warden.protocol.requests`), already checked against the states
they are allowed in (`server/dispatch.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from .. import scripts
from ..errors import NotImplementedByBackend, StateError, WardenError
from ..pool import PoolExhausted
from ..protocol import requests as rq
from . import ids
from .context import Context
from .jobs import Job, close_result, finished_output
from .resources import ACTIVE, BORN, DESTROYED, STOPPED, Resources, Snapshot

log = logging.getLogger("warden.container")

__all__ = ["ACTIVE", "BORN", "DESTROYED", "SNAPSHOT", "STOPPED", "Container", "Resources"]

OUT_OF_MEMORY = "out of memory"
OUTPUT_EXCEEDED = "command exceeded maximum output"
SNAPSHOT = "snapshot.json"


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
    async def create(cls, ctx: Context, request: rq.CreateRequest) -> Container:
        container_id = ids.next_id()
        handle = request.handle
        if handle is None:
            handle = container_id
        if handle in ctx.registry or handle in ctx.creating:
            raise WardenError(f"container with handle: {handle} already exists.")
        res = Resources(container_id=container_id, handle=handle)
        grace = request.grace_time
        container = cls(
            ctx, res, ctx.depot / container_id,
            grace if grace is not None else ctx.config.server.container_grace_time,
        )
        try:
            res.subnet = ctx.networks.acquire_network(request.network)
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

    def snapshot(self) -> Snapshot:
        return Snapshot(self.backend, self.state, self.grace_time, self.events, self.res)

    @classmethod
    def from_snapshot(cls, ctx: Context, path: Path, snapshot: Snapshot) -> Container:
        container = cls(ctx, snapshot.resources, path, snapshot.grace_time)
        container.state = snapshot.state
        container.events = snapshot.events
        return container

    def write_snapshot(self) -> None:
        """Atomic: a crash leaves either the old snapshot or the new one."""
        tmp_dir = self.path / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"{SNAPSHOT}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.snapshot().to_dict(), f)
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

    async def spawn(self, request: JobRequest) -> int:
        self.require(ACTIVE)
        job_id = self.ctx.job_ids.next()
        job = Job(job_id, self.jobs_dir / str(job_id), request.discard_output, request.log_tag)
        job.dir.mkdir(parents=True)
        try:
            _write_private(job.dir / "script", request.script)
            job.write_meta()
            await self.start_job(job, request)
        except BaseException:
            job.remove()
            raise
        self.jobs[job_id] = job
        job.watch(self._job_finished)
        self.log.debug("job spawned", extra={"data": {"job_id": job_id}})
        return job_id

    async def start_job(self, job: Job, request: JobRequest) -> None:
        """Start the job's holder, which outlives the server."""
        raise NotImplementedByBackend()

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

    async def run(self, request: rq.RunRequest) -> tuple[int, dict[str, Any]]:
        """Spawn, then link: the job id and its result."""
        job_id = await self.spawn(request)
        return job_id, await self.link(job_id)

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
        result: dict[str, Any] = {"exit_status": status.exit_status, "stdout": stdout, "stderr": stderr}
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

    # ---- what the backend reports ------------------------------------------------------

    async def out_of_memory(self) -> None:
        """The backend saw the container run out of memory: an event, and a stop."""
        self.log.info("out of memory")
        self.add_event(OUT_OF_MEMORY)
        if self.state != ACTIVE:
            self.write_snapshot()
            return
        try:
            await self.stop()
        except WardenError as exc:
            self.log.error("stop after OOM failed", extra={"data": {"error": exc.message}})

    # ---- operations a backend implements ----------------------------------------------

    @classmethod
    async def destroy_path(cls, ctx: Context, path: Path) -> None:
        """Destroy whatever is left of a container directory (also one that
        recovery could not bring back): the backend's `destroy.sh PATH`."""
        await scripts.run([str(ctx.root_path / "destroy.sh"), str(path)])

    async def do_create(self, request: rq.CreateRequest) -> None:
        raise NotImplementedByBackend()

    async def do_stop(self, kill: bool) -> None:
        raise NotImplementedByBackend()

    async def after_stop(self) -> None:
        """Runs after every stop (the OOM watcher ends here)."""

    async def do_destroy(self) -> None:
        await self.destroy_path(self.ctx, self.path)

    async def do_info(self, live: bool = True) -> dict[str, Any]:
        """Backend statistics; `live=False` asks for what costs no process start."""
        return {}

    async def restore(self) -> None:
        """Re-apply kernel state after a restart (net rules, limits)."""

    async def net_in(self, request: rq.NetInRequest) -> dict[str, int]:
        raise NotImplementedByBackend()

    async def net_out(self, request: rq.NetOutRequest) -> None:
        raise NotImplementedByBackend()

    async def copy_in(self, request: rq.CopyInRequest) -> None:
        raise NotImplementedByBackend()

    async def copy_out(self, request: rq.CopyOutRequest) -> None:
        raise NotImplementedByBackend()

    async def limit_memory(self, request: rq.LimitMemoryRequest) -> dict[str, Any]:
        raise NotImplementedByBackend()

    async def limit_disk(self, request: rq.LimitDiskRequest) -> dict[str, Any]:
        raise NotImplementedByBackend()

    async def limit_bandwidth(self, request: rq.LimitBandwidthRequest) -> dict[str, Any]:
        raise NotImplementedByBackend()

    async def limit_cpu(self, request: rq.LimitCpuRequest) -> dict[str, Any]:
        raise NotImplementedByBackend()


JobRequest = rq.SpawnRequest | rq.RunRequest


def _write_private(path: Path, data: bytes) -> None:
    """A new file readable by its owner only (0600, like job output): a job's
    script may hold secrets, and the job directory is not private on every host."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
