"""Disk limits: LimitDisk and Info's disk_stat, through the container's
`limit_disk.sh`.

Limits are kept in 1 KiB blocks, as upstream. On hosts without per-uid quotas
(this project's default) each writable layer is a btrfs subvolume with a
qgroup limit; with `server.quota.disk_quota_enabled` the uid's quota on the
depot's filesystem is used instead, read back by the `repquota` helper.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ... import scripts
from ...errors import WardenError
from ...protocol import requests as rq
from .cgroups import SRC
from .net import key_values
from .shell import Shell

if TYPE_CHECKING:
    from ..base import Container

DISK_KEYS = ("block_soft", "block_hard", "inode_soft", "inode_hard")
# Later fields win: bytes, then blocks, then inodes; `*_hard` over its aliases.
BLOCK_FIELDS = {
    "byte": ("byte_limit", "byte", "byte_soft", "byte_hard"),
    "block": ("block_limit", "block", "block_soft", "block_hard"),
}
INODE_FIELDS = ("inode_limit", "inode", "inode_soft", "inode_hard")


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding `path` (where quotas are set)."""
    current = Path(path).resolve()
    device = current.stat().st_dev
    while current.parent != current and current.parent.stat().st_dev == device:
        current = current.parent
    return str(current)


def _target(name: str) -> str:
    return "block_soft" if name.endswith("_soft") else "block_hard"


def requested_blocks(request: rq.LimitDiskRequest, current: dict[str, int]) -> dict[str, int]:
    """The four limits after a LimitDisk: the current ones with the request's on top."""
    blocks = dict(current)
    for prefix, scale in (("byte", 1024), ("block", 1)):
        for name in BLOCK_FIELDS[prefix]:
            value = getattr(request, name)
            if value is not None:
                blocks[_target(name)] = -(-value // scale) if scale > 1 else value
    for name in INODE_FIELDS:
        value = getattr(request, name)
        if value is not None:
            blocks["inode_soft" if name == "inode_soft" else "inode_hard"] = value
    return blocks


def disk_response(values: dict[str, str]) -> dict[str, int]:
    block_soft = int(values.get("block_soft", 0) or 0)
    block_hard = int(values.get("block_hard", 0) or 0)
    inode_soft = int(values.get("inode_soft", 0) or 0)
    inode_hard = int(values.get("inode_hard", 0) or 0)
    return {
        "block_limit": block_hard, "block": block_hard, "block_soft": block_soft, "block_hard": block_hard,
        "inode_limit": inode_hard, "inode": inode_hard, "inode_soft": inode_soft, "inode_hard": inode_hard,
        "byte_limit": block_hard * 1024, "byte": block_hard * 1024,
        "byte_soft": block_soft * 1024, "byte_hard": block_hard * 1024,
    }


class Disk:
    def __init__(self, container: Container, shell: Shell) -> None:
        self.container = container
        self.shell = shell

    @property
    def depot(self) -> str:
        return self.container.ctx.config.server.container_depot_path

    async def prepare(self) -> None:
        """At create, with per-uid quotas: the uid starts with no quota left over
        from an earlier container."""
        if self.container.ctx.config.server.disk_quota_enabled:
            await scripts.run(["setquota", "-u", str(self.container.res.uid), "0", "0", "0", "0",
                               mount_point(self.depot)])

    async def limit_disk(self, request: rq.LimitDiskRequest) -> dict[str, Any]:
        if not self.shell.has("limit_disk.sh"):
            return {}
        current = await self._read()
        blocks = requested_blocks(request, {k: int(current.get(k, 0) or 0) for k in DISK_KEYS})
        env = {k.upper(): v for k, v in blocks.items()}
        result = await self.shell.run("limit_disk.sh", env={**env, **self._quota_env()})
        self.container.res.limits["disk"] = blocks
        self.container.write_snapshot()
        return disk_response(key_values(result.stdout.decode()))

    async def disk_stat(self) -> dict[str, int] | None:
        """Info's disk_stat (a script run), or None where it cannot be read."""
        if not self.shell.has("limit_disk.sh"):
            return None
        try:
            values = await self._read()
            return {"bytes_used": int(values.get("bytes_used", 0)),
                    "inodes_used": int(values.get("inodes_used", 0))}
        except (WardenError, ValueError):
            return None

    async def _read(self) -> dict[str, str]:
        result = await self.shell.run("limit_disk.sh", env=self._quota_env())
        return key_values(result.stdout.decode())

    def _quota_env(self) -> dict[str, str]:
        """Where per-uid quotas are read on hosts that have them (unused with the pool)."""
        return {"REPQUOTA": str(SRC / "repquota" / "repquota"),
                "CONTAINER_DEPOT_MOUNT_POINT_PATH": mount_point(self.depot)}
