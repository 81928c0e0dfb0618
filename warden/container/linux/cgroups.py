"""Cgroups: memory and cpu limits, their statistics, and the OOM watch.

The limits are set by the container's `limit_memory.sh` and `limit_cpu.sh`;
Python reads statistics straight from the cgroup files (no process), and an
`oom` helper process blocks until the kernel reports an OOM in the container.

Where the files are, and what they are called, depends on the host's cgroup
layout: that knowledge is a `CgroupDriver`. `V1` is the layout with one
hierarchy per controller (`/sys/fs/cgroup/<controller>/warden/instance-<id>`),
also on hybrid hosts (v1 controllers beside an empty cgroup2); `V2` is the
unified hierarchy (`<base>/instance-<id>`, where root/linux/setup.sh chose
`base`). setup.sh records the layout in `<depot>/.cgroup-layout`, which the
container scripts read too.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import WardenError
from ...protocol.catalogue import catalogue
from .shell import Shell

if TYPE_CHECKING:
    from ..base import Container

CGROUP_ROOT = Path("/sys/fs/cgroup")
SRC = Path(__file__).resolve().parents[3] / "src"
LAYOUT_FILE = ".cgroup-layout"
USER_HZ = 100  # what v1's cpuacct.stat counts in (sysconf(_SC_CLK_TCK) on Linux)
# v1's memory.limit_in_bytes when no limit is set (PAGE_COUNTER_MAX pages, 4 KiB pages)
V1_UNLIMITED = 9223372036854771712


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def read_key_values(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file (`key value` lines), integers only."""
    values: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.isdigit():
            values[key] = int(value)
    return values


class CgroupDriver(ABC):
    """Where one container's cgroup files are on this host's layout."""

    def __init__(self, container_id: str, root: Path = CGROUP_ROOT) -> None:
        self.container_id = container_id
        self.root = root

    @abstractmethod
    def procs_file(self) -> Path:
        """The container's cgroup.procs (wshd and every job are in it)."""

    @abstractmethod
    def oom_target(self) -> Path:
        """The directory the `oom` helper watches."""

    @abstractmethod
    def memory_stat(self) -> dict[str, int]:
        """Info's MemoryStat fields, in v1's names and units."""

    @abstractmethod
    def cpu_stat(self) -> dict[str, int]:
        """Info's CpuStat: usage in ns, user and system in USER_HZ ticks."""


class V1(CgroupDriver):
    """One hierarchy per controller: `<root>/<controller>/warden/instance-<id>`."""

    def group(self, controller: str) -> Path:
        return self.root / controller / "warden" / f"instance-{self.container_id}"

    def procs_file(self) -> Path:
        return self.group("cpu") / "cgroup.procs"

    def oom_target(self) -> Path:
        return self.group("memory")

    def memory_stat(self) -> dict[str, int]:
        fields = catalogue().structs["MemoryStat"]
        stat = read_key_values(self.group("memory") / "memory.stat")
        return {key: value for key, value in stat.items() if key in fields}

    def cpu_stat(self) -> dict[str, int]:
        usage = read_int(self.group("cpuacct") / "cpuacct.usage")
        if usage is None:
            return {}
        ticks = read_key_values(self.group("cpuacct") / "cpuacct.stat")
        return {"usage": usage, **{k: v for k, v in ticks.items() if k in ("user", "system")}}


class V2(CgroupDriver):
    """The unified hierarchy: one group, `<base>/instance-<id>`, for every controller.

    Info keeps v1's field names and units, so clients see no difference: see
    root/linux/README.md for the mapping; fields v2 has no counterpart for
    (pgpgin, pgpgout) are left out."""

    # MemoryStat field <- memory.stat key of v2
    MEMORY_STAT: ClassVar[dict[str, str]] = {
        "cache": "file", "rss": "anon", "mapped_file": "file_mapped", "pgfault": "pgfault",
        "pgmajfault": "pgmajfault", "inactive_anon": "inactive_anon", "active_anon": "active_anon",
        "inactive_file": "inactive_file", "active_file": "active_file", "unevictable": "unevictable"}

    def __init__(self, container_id: str, base: Path) -> None:
        super().__init__(container_id, base)
        self.group = base / f"instance-{container_id}"

    def procs_file(self) -> Path:
        return self.group / "cgroup.procs"

    def oom_target(self) -> Path:
        return self.group

    def memory_stat(self) -> dict[str, int]:
        raw = read_key_values(self.group / "memory.stat")
        if not raw:
            return {}
        stat = {name: raw[key] for name, key in self.MEMORY_STAT.items() if key in raw}
        swap = read_int(self.group / "memory.swap.current")
        if swap is not None:
            stat["swap"] = swap
        limit = self._limit("memory.max")
        swap_limit = self._limit("memory.swap.max")
        stat["hierarchical_memory_limit"] = limit
        stat["hierarchical_memsw_limit"] = min(limit + swap_limit, V1_UNLIMITED)
        # v2's statistics are hierarchical already: v1's total_* are the same numbers.
        for name in list(stat):
            if not name.startswith("hierarchical_"):
                stat[f"total_{name}"] = stat[name]
        return stat

    def _limit(self, name: str) -> int:
        """A memory.max-like file in bytes, with v1's number for "max"."""
        try:
            text = (self.group / name).read_text().strip()
        except OSError:
            return V1_UNLIMITED
        return V1_UNLIMITED if text == "max" or not text.isdigit() else min(int(text), V1_UNLIMITED)

    def cpu_stat(self) -> dict[str, int]:
        raw = read_key_values(self.group / "cpu.stat")
        if "usage_usec" not in raw:
            return {}
        stat = {"usage": raw["usage_usec"] * 1000}
        for name in ("user", "system"):
            if f"{name}_usec" in raw:
                stat[name] = raw[f"{name}_usec"] * USER_HZ // 1_000_000
        return stat


@dataclass(frozen=True)
class Layout:
    """The host's cgroup layout, as root/linux/setup.sh found and recorded it."""

    name: str = "v1"             # v1, hybrid or v2
    base: Path | None = None     # v2: the parent of the instance-<id> groups

    def driver(self, container_id: str) -> CgroupDriver:
        if self.name == "v2" and self.base is not None:
            return V2(container_id, self.base)
        return V1(container_id)


def parse_layout(text: str) -> Layout:
    values = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    name = values.get("layout", "v1")
    base = values.get("base")
    return Layout(name, Path(base) if base else None)


@functools.cache
def layout_of(depot: Path) -> Layout:
    """The depot's recorded layout. Without a record (a depot set up before layouts
    were recorded, or not by setup.sh) v1, or on a cgroup2 root what setup.sh picks
    without delegation, as lib/cgroup.sh does."""
    try:
        return parse_layout((depot / LAYOUT_FILE).read_text())
    except OSError:
        return unrecorded_layout()


def unrecorded_layout(root: Path = CGROUP_ROOT) -> Layout:
    if (root / "cgroup.controllers").exists():
        return Layout("v2", root / "warden")
    return Layout()


def _script_error(exc: WardenError, what: str) -> WardenError:
    """The script's own `Failed ...` message, else one that says what failed."""
    detail = exc.data or ""
    return WardenError(detail if detail.startswith("Failed") else f"Failed setting {what}: {detail}")


class Cgroups:
    """A container's memory and cpu limits (recorded in its resources, so a
    restarted server applies them again), statistics and OOM watch."""

    def __init__(self, container: Container, shell: Shell, driver: CgroupDriver) -> None:
        self.container = container
        self.shell = shell
        self.driver = driver
        self._oom: asyncio.subprocess.Process | None = None

    @property
    def limits(self) -> dict[str, Any]:
        return self.container.res.limits

    async def limit_memory(self, limit: int | None, record: bool = True) -> dict[str, Any]:
        if limit is not None:
            await self._start_oom_watch()
        applied = await self._limit("limit_memory.sh", "LIMIT_IN_BYTES", limit, "memory limit")
        if limit is not None and record:
            self._record("memory", limit)
        return {"limit_in_bytes": applied}

    async def limit_cpu(self, shares: int | None, record: bool = True) -> dict[str, Any]:
        applied = await self._limit("limit_cpu.sh", "LIMIT_IN_SHARES", shares, "cpu shares")
        if shares is not None and record:
            self._record("cpu", shares)
        return {"limit_in_shares": applied}

    async def _limit(self, script: str, name: str, value: int | None, what: str) -> int:
        """Set (or, with None, only read) a limit; the script prints what applies."""
        try:
            result = await self.shell.run(script, env={name: value} if value is not None else {})
        except WardenError as exc:
            raise _script_error(exc, what) from None
        return int(result.stdout.split()[0])

    def _record(self, key: str, value: int) -> None:
        self.limits[key] = value
        self.container.write_snapshot()

    async def restore(self) -> None:
        if self.limits.get("memory") is not None:
            await self.limit_memory(self.limits["memory"], record=False)
        if self.limits.get("cpu") is not None:
            await self.limit_cpu(self.limits["cpu"], record=False)

    def stats(self) -> dict[str, Any]:
        """Info's memory_stat and cpu_stat, from the cgroup files."""
        info: dict[str, Any] = {}
        memory = self.driver.memory_stat()
        if memory:
            info["memory_stat"] = memory
        cpu = self.driver.cpu_stat()
        if cpu:
            info["cpu_stat"] = cpu
        return info

    def process_count(self) -> int | None:
        """How many processes the container has (wshd counts), or None when
        the cgroup cannot be read."""
        try:
            with open(self.driver.procs_file()) as f:
                return len(f.read().split())
        except OSError:
            return None

    # ---- OOM -------------------------------------------------------------------

    async def _start_oom_watch(self) -> None:
        if self._oom is not None and self._oom.returncode is None:
            return
        oom = SRC / "oom" / "oom"
        if not oom.exists():
            return
        self._oom = await asyncio.create_subprocess_exec(
            str(oom), str(self.driver.oom_target()),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        self.container.ctx.spawn_background(self._watch(self._oom))

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        status = await proc.wait()
        if status == 0 and proc is self._oom:
            await self.container.out_of_memory()

    def stop_oom_watch(self) -> None:
        proc, self._oom = self._oom, None
        if proc is not None and proc.returncode is None:
            proc.kill()
