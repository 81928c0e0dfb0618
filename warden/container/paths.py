"""Paths and owners from a client, checked before any tool sees them.

Every CopyIn/CopyOut argument reaches rsync or chown on the host, as root: a
value that starts with `-` would be an option (`--rsh=...` runs a command), a
host path with a colon before its first slash is rsync's remote syntax, and a
container path that goes through a symlink a job made could point anywhere on
the host. So host paths must be absolute, owners are names or ids, container
paths are anchored, and on a backend without its own root (insecure) they are
resolved inside the container's directory the way the kernel would resolve
them inside a chroot.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import WardenError

OWNER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
MAX_SYMLINKS = 40  # as the kernel's ELOOP limit


def invalid(field: str, why: str, value: str) -> WardenError:
    return WardenError(f"invalid request: {field} {why}, got {value!r}")


def host_path(field: str, value: str) -> str:
    """An absolute path on the host: never an option, never rsync's `host:path`."""
    if not value.startswith("/") or "\0" in value:
        raise invalid(field, "must be an absolute host path", value)
    return value


def owner(value: str) -> str:
    """`USER` or `USER:GROUP`, each a name or a number."""
    if not OWNER.match(value):
        raise invalid("owner", "must be USER or USER:GROUP (names or ids)", value)
    return value


def container_path(field: str, value: str) -> str:
    """A path inside the container as its own rsync takes it: absolute, or
    relative anchored with `./` so that it cannot read as an option."""
    if "\0" in value:
        raise invalid(field, "must not contain NUL", value)
    return value if value.startswith("/") else "./" + value


def resolve_in_root(root: Path, path: str) -> str:
    """`path` inside `root` as the container sees it: symlinks are followed
    with `root` as `/` and `..` stops at it, so the result never leaves
    `root`. Components that do not exist yet (a CopyIn target) are kept as
    they are. A trailing `/` (rsync: the contents) is kept."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, name)
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                raise WardenError(f"too many levels of symbolic links: {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(name)
    result = str(root.joinpath(*resolved))
    return result + "/" if path.endswith("/") or not resolved else result
