"""What every container shares: the config, the pools, job ids and the registry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..pool import NetworkPool, PortPool, UidPool
from .jobs import JobIds

if TYPE_CHECKING:
    from .base import Container


@dataclass
class Context:
    config: Config
    networks: NetworkPool
    ports: PortPool
    uids: UidPool
    job_ids: JobIds
    registry: dict[str, Container] = field(default_factory=dict)
    creating: set[str] = field(default_factory=set)
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn_background(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run work nobody awaits, keeping a reference so it is not collected early."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    @classmethod
    def from_config(cls, config: Config) -> Context:
        depot = Path(config.server.container_depot_path)
        depot.mkdir(parents=True, exist_ok=True)
        return cls(
            config=config,
            networks=NetworkPool(config.network.pool_network, config.network.release_delay),
            ports=PortPool(config.port.pool_start_port, config.port.pool_size),
            uids=UidPool(config.user.pool_start_uid, config.user.pool_size),
            job_ids=JobIds(depot / ".job-ids"),
        )

    @property
    def depot(self) -> Path:
        return Path(self.config.server.container_depot_path)

    @property
    def root_path(self) -> Path:
        return self.config.root_path
