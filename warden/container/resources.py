"""The record of a container: what it holds, and its snapshot on disk.

`Snapshot.to_dict` is what `snapshot.json` holds and `Snapshot.from_dict` reads
it back, so the writer (the container) and the reader (recovery after a
restart) cannot disagree about a field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ..pool import Subnet

BORN, ACTIVE, STOPPED, DESTROYED = "born", "active", "stopped", "destroyed"


class MalformedSnapshot(ValueError):
    """A snapshot that cannot be read back; the message says what is wrong."""


@dataclass
class Resources:
    """What a container holds and gives back on destroy: pool entries, and the
    rules and limits a restarted server must apply again."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_id": self.container_id,
            "handle": self.handle,
            "network": str(self.subnet) if self.subnet else None,
            "uid": self.uid,
            "ports": self.ports,
            "net_in": self.net_in,
            "net_out": self.net_out,
            "limits": self.limits,
            "bind_mounts": self.bind_mounts,
            "rootfs": self.rootfs,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Resources:
        try:
            return cls(
                container_id=str(raw["container_id"]),
                handle=str(raw["handle"]),
                subnet=Subnet(ipaddress.IPv4Address(raw["network"])) if raw.get("network") else None,
                uid=int(raw["uid"]) if raw.get("uid") is not None else None,
                ports=[int(p) for p in raw.get("ports") or []],
                net_in=list(raw.get("net_in") or []),
                net_out=list(raw.get("net_out") or []),
                limits=dict(raw.get("limits") or {}),
                bind_mounts=list(raw.get("bind_mounts") or []),
                rootfs=raw.get("rootfs"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedSnapshot(f"malformed snapshot resources: {exc}") from None


@dataclass
class Snapshot:
    """A container as `snapshot.json` keeps it between two servers."""

    backend: str
    state: str
    grace_time: int | None
    events: list[str]
    resources: Resources

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "state": self.state,
            "grace_time": self.grace_time,
            "events": self.events,
            "resources": self.resources.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Any, backend: str) -> Snapshot:
        """Only a container that was active or stopped can come back; a snapshot
        without a backend predates the field and counts as `backend`'s."""
        if not isinstance(raw, dict) or not isinstance(raw.get("resources"), dict):
            raise MalformedSnapshot("malformed snapshot")
        if raw.get("state") not in (ACTIVE, STOPPED):
            raise MalformedSnapshot(f"snapshot state {raw.get('state')!r}")
        if raw.get("backend", backend) != backend:
            raise MalformedSnapshot(f"made by the {raw.get('backend')} backend")
        return cls(
            backend=backend,
            state=raw["state"],
            grace_time=raw.get("grace_time"),
            events=[str(e) for e in raw.get("events") or []],
            resources=Resources.from_dict(raw["resources"]),
        )
