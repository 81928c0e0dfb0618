"""Start-up recovery: bring back every container a previous server left on disk.

A container comes back when its snapshot is readable and the backend says it is
alive; it then re-takes its pool entries, re-applies its kernel state and re-arms
its grace timer, and its jobs are re-attached from their directories. Anything
else found in the depot is destroyed, so a crash never leaves debris behind.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..container.base import SNAPSHOT, Container
from ..container.context import Context
from ..container.jobs import Job, remove_job_dir
from ..container.resources import MalformedSnapshot, Snapshot
from ..errors import WardenError

log = logging.getLogger("warden.recovery")


class Unrecoverable(Exception):
    pass


def _read_snapshot(path: Path, backend: str) -> Snapshot:
    try:
        raw = json.loads((path / SNAPSHOT).read_text())
    except FileNotFoundError:
        raise Unrecoverable("no snapshot") from None
    except (OSError, ValueError) as exc:
        raise Unrecoverable(f"unreadable snapshot: {exc}") from None
    try:
        return Snapshot.from_dict(raw, backend)
    except MalformedSnapshot as exc:
        raise Unrecoverable(str(exc)) from None


def _build(ctx: Context, cls: type[Container], path: Path, snapshot: Snapshot) -> Container:
    if snapshot.resources.handle in ctx.registry:
        raise Unrecoverable(f"handle {snapshot.resources.handle!r} already recovered from another directory")
    return cls.from_snapshot(ctx, path, snapshot)


def _take_resources(ctx: Context, container: Container) -> None:
    res = container.res
    if res.subnet is not None:
        ctx.networks.remove(res.subnet)
    if res.uid is not None:
        ctx.uids.remove(res.uid)
    for port in res.ports:
        ctx.ports.remove(port)


def _adopt_jobs(ctx: Context, container: Container) -> None:
    jobs_dir = container.jobs_dir
    if not jobs_dir.is_dir():
        return
    for entry in sorted(jobs_dir.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".gone-"):
            remove_job_dir(entry)  # linked before the restart
            continue
        if not entry.name.isdigit():
            continue
        job_id = int(entry.name)
        ctx.job_ids.seen(job_id)
        job = Job.load(job_id, entry)
        if not job.started:
            # Spawn was interrupted before the holder started: nothing to recover.
            container.log.info("dropping job that never started", extra={"data": {"job_id": job_id}})
            job.remove()
            continue
        container.adopt_job(job)
    container.sweep_job_outputs()


async def _destroy_dir(ctx: Context, cls: type[Container], path: Path, reason: str) -> None:
    log.warning("Destroying container", extra={"data": {"path": str(path), "reason": reason}})
    try:
        await cls.destroy_path(ctx, path)
    except WardenError as exc:
        log.error("destroy of unrecoverable container failed",
                  extra={"data": {"path": str(path), "error": exc.message, "detail": exc.data}})


async def recover(ctx: Context, cls: type[Container]) -> None:
    highest_port = None
    for path in sorted(ctx.depot.iterdir()):
        if path.name.startswith(".") or not path.is_dir() or path.name == "tmp":
            continue
        container = None
        try:
            snapshot = _read_snapshot(path, cls.backend)
            if not cls.alive(path):
                raise Unrecoverable("dead")
            container = _build(ctx, cls, path, snapshot)
            _take_resources(ctx, container)
            _adopt_jobs(ctx, container)
            await container.restore()
        except (Unrecoverable, WardenError) as exc:
            if container is not None:
                for job in container.jobs.values():
                    job.cancel()
                container.release()
            reason = exc.message if isinstance(exc, WardenError) else str(exc)
            await _destroy_dir(ctx, cls, path, reason)
            continue
        ctx.registry[container.handle] = container
        container.arm_grace_timer()
        if container.res.ports:
            highest_port = max([highest_port or 0, *container.res.ports])
        container.log.info("Recovered container", extra={"data": {"path": str(path), "state": container.state,
                                                                  "jobs": sorted(container.jobs)}})
    if highest_port is not None:
        ctx.ports.rotate_past(highest_port)
