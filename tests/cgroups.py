"""The container's cgroup files as the kernel tests read them, on either layout.

v1 (and hybrid): one group per subsystem, `<root>/<subsystem>/warden/instance-<id>`.
v2: one group, `<base>/instance-<id>`, with `base` from the depot's record
(`<depot>/.cgroup-layout`, written by root/linux/setup.sh), else `<root>/warden`.
The tests assert v1's numbers; on v2 these helpers read the v2 files and give
v1's meaning (memsw = memory.max + memory.swap.max, shares from cpu.weight).
"""

from __future__ import annotations

from pathlib import Path

from warden import leaks
from warden.container.linux.cgroups import V1_UNLIMITED, layout_of

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_SUBSYSTEMS = ("cpu", "cpuacct", "cpuset", "memory", "devices")
V2_CONTROLLERS = ("cpu", "memory", "pids")


def host_layout() -> str:
    return "v2" if (CGROUP_ROOT / "cgroup.controllers").exists() else "v1"


def v2() -> bool:
    return host_layout() == "v2"


def missing() -> str | None:
    """Why real containers cannot get their cgroups here, or None."""
    if v2():
        available = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        absent = [c for c in V2_CONTROLLERS if c not in available]
        return f"cgroup v2 controllers missing at {CGROUP_ROOT}: {' '.join(absent)}" if absent else None
    for subsystem in V1_SUBSYSTEMS:
        if not (CGROUP_ROOT / subsystem / "cgroup.procs").exists():
            return f"cgroup v1 {subsystem} is not mounted at {CGROUP_ROOT / subsystem}"
    return None


def base(depot: Path) -> Path:
    """v2: the parent of the depot's instance groups."""
    layout_of.cache_clear()  # the test may have just run setup.sh
    recorded = layout_of(Path(depot))
    return recorded.base if recorded.base is not None else CGROUP_ROOT / "warden"


def group(depot: Path, cid: str, subsystem: str) -> Path:
    """The container's group that holds `subsystem`'s files."""
    if v2():
        return base(depot) / f"instance-{cid}"
    return CGROUP_ROOT / subsystem / "warden" / f"instance-{cid}"


def parents(depot: Path) -> list[Path]:
    """The groups setup.sh makes for the containers to go below."""
    if v2():
        return [base(depot)]
    return [CGROUP_ROOT / s / "warden" for s in V1_SUBSYSTEMS]


def instance_groups(cid: str | None = None) -> list[Path]:
    """Every warden instance group on the host (of container `cid` only, if given)."""
    groups = sorted(Path(g) for g in leaks.cgroups())
    return [g for g in groups if cid is None or g.name == f"instance-{cid}"]


def _bytes(path: Path) -> int:
    text = path.read_text().strip()
    return V1_UNLIMITED if text == "max" else int(text)


def memory_limits(depot: Path, cid: str) -> tuple[int, int]:
    """(memory limit, memory + swap limit) in bytes, as v1's two files give them."""
    g = group(depot, cid, "memory")
    if v2():
        limit = _bytes(g / "memory.max")
        return limit, min(limit + _bytes(g / "memory.swap.max"), V1_UNLIMITED)
    return int((g / "memory.limit_in_bytes").read_text()), int((g / "memory.memsw.limit_in_bytes").read_text())


def has_memsw(depot: Path, cid: str) -> bool:
    """Is swap accounted (v1's memsw file; v2's memory.swap.max)?"""
    g = group(depot, cid, "memory")
    return (g / ("memory.swap.max" if v2() else "memory.memsw.limit_in_bytes")).exists()


def cpu_weight_of(shares: int) -> int:
    """v2's cpu.weight for v1's cpu.shares (runc's conversion, as limit_cpu.sh does)."""
    return 1 + ((shares - 2) * 9999) // 262142


def cpu_setting(depot: Path, cid: str) -> str:
    """What the kernel holds for the container's cpu shares: v1 cpu.shares, v2 cpu.weight."""
    g = group(depot, cid, "cpu")
    return (g / ("cpu.weight" if v2() else "cpu.shares")).read_text()


def ooms(depot: Path, cid: str) -> int:
    """How many OOM kills the container's memory group saw (v1: under_oom as 0/1)."""
    g = group(depot, cid, "memory")
    if v2():
        for line in (g / "memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
    for line in (g / "memory.oom_control").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
