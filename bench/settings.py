"""How much each benchmark does: the default run, --quick, and explicit overrides."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20


@dataclass
class Settings:
    warmup: int = 5                  # rounds before the samples (lifecycle: a fifth, at least 1)
    iterations: int = 300            # run_true samples per peer
    burst: int = 4                   # run_true runs per peer per round (see run_true.sample_rounds)
    lifecycle_iterations: int = 100  # lifecycle samples per peer
    lifecycle_burst: int = 3
    scale_containers: int = 250
    scale_clients: int = 8
    stream_bytes: int = 1024 * MIB
    stream_repeats: int = 3
    ping_seconds: float = 3.0
    ping_batch: int = 100
    rootfs: str = "/var/lib/warden/rootfs"

    @classmethod
    def quick(cls) -> Settings:
        return cls(warmup=2, iterations=30, lifecycle_iterations=10, scale_containers=40,
                   stream_bytes=256 * MIB, stream_repeats=2, ping_seconds=1.0)
