"""Files: CopyIn and CopyOut through rsync, and the bind mounts asked for at Create.

rsync reaches the container through `wsh --rsh`, so the copy runs inside the
container (its root, its users); bind mounts are made by wshd's after-pivot
hook, in the container's own mount namespace.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ... import scripts
from ...errors import WardenError
from ...protocol import requests as rq
from .. import paths

if TYPE_CHECKING:
    from ..base import Container


def check_bind_mounts(mounts: list[rq.BindMount]) -> None:
    for mount in mounts:
        if not Path(mount.src_path).exists():
            raise WardenError(f"Source path for bind mount does not exist: {mount.src_path}")
        dst = mount.dst_path
        if not dst.startswith("/") or ".." in dst.split("/") or dst.rstrip("/") == "":
            raise WardenError(f"invalid request: bind mount dst_path must be an absolute path "
                              f"without '..' and not '/': {dst!r}")


def bind_mount_lines(mounts: list[dict[str, str]]) -> list[str]:
    """Shell for the after-pivot hook. After pivot_root the target resolves
    inside the container (its symlinks, e.g. /var/run -> /run, stay in it) and
    the host's source is reached through the old root at /mnt."""
    lines = ["", "# bind mounts requested by Create"]
    for mount in mounts:
        mode = "ro" if mount["mode"] == "RO" else "rw"
        src = shlex.quote("/mnt" + os.path.realpath(mount["src_path"]))
        dst = shlex.quote(mount["dst_path"])
        test = "-d" if os.path.isdir(mount["src_path"]) else "-e"
        make = f"mkdir -p {dst}" if test == "-d" else f"mkdir -p \"$(dirname {dst})\" && touch {dst}"
        lines += [
            f"[[ {test} {dst} ]] || {{ {make}; }}",
            f"mount --bind {src} {dst}",
            f"mount -o remount,bind,{mode} {dst}",
        ]
    return lines


class Files:
    def __init__(self, container: Container) -> None:
        self.container = container

    @property
    def path(self) -> Path:
        return self.container.path

    def record_bind_mounts(self, mounts: list[rq.BindMount]) -> None:
        check_bind_mounts(mounts)
        self.container.res.bind_mounts = [
            {"src_path": m.src_path, "dst_path": m.dst_path, "mode": m.mode} for m in mounts]

    def write_bind_mounts(self) -> None:
        """Appended to the container's after-pivot hook, before it starts, so
        the host never sees the mounts."""
        if not self.container.res.bind_mounts:
            return
        hook = self.path / "lib" / "hook-child-after-pivot.sh"
        with open(hook, "a") as f:
            f.write("\n".join(bind_mount_lines(self.container.res.bind_mounts)) + "\n")

    def _rsh(self) -> str:
        return f"{self.path / 'bin' / 'wsh'} --socket {self.path / 'run' / 'wshd.sock'} --rsh"

    async def copy_in(self, request: rq.CopyInRequest) -> None:
        src = paths.host_path("src_path", request.src_path)
        dst = paths.container_path("dst_path", request.dst_path)
        await scripts.run(["rsync", "-r", "-p", "--links", "-e", self._rsh(), "--", src, f"vcap@container:{dst}"])

    async def copy_out(self, request: rq.CopyOutRequest) -> None:
        src = paths.container_path("src_path", request.src_path)
        dst = paths.host_path("dst_path", request.dst_path)
        owner = paths.owner(request.owner) if request.owner else None
        await scripts.run(["rsync", "-r", "-p", "--links", "-e", self._rsh(), "--", f"vcap@container:{src}", dst])
        if owner:
            # -h: a symlink copied out of the container is changed itself, never what it points to
            await scripts.run(["chown", "-R", "-h", "--", owner, dst])
