"""Containers: the state machine in `base`, one subclass per backend."""

from __future__ import annotations

from .base import Container


def backend_class(name: str) -> type[Container]:
    if name == "insecure":
        from .insecure import InsecureContainer

        return InsecureContainer
    if name == "linux":
        from .linux import LinuxContainer

        return LinuxContainer
    raise ValueError(f"unknown backend {name!r}")


__all__ = ["Container", "backend_class"]
