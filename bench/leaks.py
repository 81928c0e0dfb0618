"""What the bench may leave in the kernel: `warden.leaks` plus the bench's own
objects (reference cgroups, interfaces and chains, OCI cgroups, loop devices,
mounts and processes under the bench's dir), compared before and after.

Other servers (a test run) may come and go meanwhile, so a new object counts as
the bench's only when it carries one of its marks: its dir, its pools, an id of
a container it created, or a bench name; anything else new is reported apart.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from warden import leaks as warden_leaks

CGROUP_ROOT = Path("/sys/fs/cgroup")
BENCH_MARKS = ("wbench", "warden-bench", "wb-")


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def snapshot() -> frozenset[str]:
    objects = warden_leaks.snapshot()
    items = {f"{name}: {item}" for name in objects.__dataclass_fields__ for item in getattr(objects, name)}
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 1 and ("/wb-" in parts[1] or "wbench" in line):
            items.add(f"mounts: {parts[1]}")
    for pattern in ("*/warden-bench*", "*/warden-bench*/*"):
        items.update(f"cgroups: {p}" for p in CGROUP_ROOT.glob(pattern) if p.is_dir())
    items.update(f"interfaces: {p.name}" for p in Path("/sys/class/net").iterdir() if p.name.startswith("wb-"))
    for table in ("filter", "nat"):
        for line in _run(["iptables-save", "-t", table]).splitlines():
            if "wbench" in line and (line.startswith(":") or line.startswith("-A")):
                items.add(f"bench iptables: {table}: {line}")
    for line in _run(["losetup", "-a"]).splitlines():
        items.add(f"loop devices: {line.strip()}")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        if b"/tmp/wb-" in cmdline or "warden-bench" in cgroup:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")[:120]
            items.add(f"bench processes: {entry.name} {command}")
    return frozenset(items)


def _process_marks(item: str) -> str:
    """For `processes: <pid> <comm>`: its cgroups and command line, to match marks against."""
    try:
        pid = item.split()[1]
        return (Path(f"/proc/{pid}/cgroup").read_text()
                + Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
    except (OSError, IndexError):
        return ""


def compare(before: frozenset[str], after: frozenset[str], marks: set[str]) -> tuple[list[str], list[str]]:
    """(objects left by the bench, other new objects)."""
    ours, others = [], []
    marks = {m for m in marks if m} | set(BENCH_MARKS)
    for item in sorted(after - before):
        text = item + (_process_marks(item) if item.startswith("processes:") else "")
        if any(mark in text for mark in marks):
            ours.append(item)
        else:
            others.append(item)
    return ours, others
