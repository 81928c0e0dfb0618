"""Starting a job's holder: the `iomux-spawn` daemon that outlives the server.

Both backends use it (on Linux only for jobs with a log_tag, which need the
host's syslog socket); what runs under it is the backend's business.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import scripts
from ..config import ServerConfig
from ..errors import WardenError
from ..protocol import wire_fields
from .jobs import Job


def job_lang() -> str:
    return os.environ.get("LANG") or "en_US.UTF-8"


def merge_rlimits(defaults: Mapping[str, int], requested: Any) -> dict[str, int]:
    """The config's rlimits with the request's on top, in a fresh dict (no leaks).
    `requested` is a ResourceLimits, or a plain map of wire names."""
    if requested is not None and not isinstance(requested, Mapping):
        requested = wire_fields(requested)
    merged = dict(defaults)
    merged.update({k: v for k, v in (requested or {}).items() if v is not None})
    return merged


def iomux_spawn_argv(bin_dir: Path, job: Job, server: ServerConfig, *options: str) -> list[str]:
    """`iomux-spawn` with the job's stdin, output handling and syslog copy; the
    backend adds its own options, then `JOBDIR -- COMMAND`."""
    argv = [str(bin_dir / "iomux-spawn"), "-i", str(job.dir / "script"), *options]
    if job.discard_output:
        argv.append("-d")
    else:
        argv += ["-l", str(server.job_output_limit)]
    if job.log_tag is not None:
        argv += ["-t", f"warden.{job.log_tag}", "-s", server.syslog_socket or "/dev/log"]
    return argv


async def start(argv: list[str], env: Mapping[str, str]) -> None:
    """Run iomux-spawn, which returns once the job is held (it daemonizes)."""
    result = await scripts.run(argv, env, check=False, clean_env=True)
    if result.status != 0:
        detail = result.stderr.decode("utf-8", "replace").strip()
        raise WardenError("iomux-spawn failed", detail or None)
