"""What warden holds in the kernel right now: mounts, iptables chains and rules,
interfaces, cgroups, network namespaces and processes.

The test suite takes a snapshot before and after its run and fails on anything
new; `python -m warden.leaks` prints the current list for an operator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROCESS_NAMES = {"wshd", "iomux-spawn", "iomux-link", "oom"}


@dataclass(frozen=True)
class Objects:
    mounts: frozenset[str] = field(default_factory=frozenset)
    chains: frozenset[str] = field(default_factory=frozenset)
    rules: frozenset[str] = field(default_factory=frozenset)
    interfaces: frozenset[str] = field(default_factory=frozenset)
    cgroups: frozenset[str] = field(default_factory=frozenset)
    netns: frozenset[str] = field(default_factory=frozenset)
    processes: frozenset[str] = field(default_factory=frozenset)

    def __sub__(self, other: Objects) -> Objects:
        return Objects(**{name: getattr(self, name) - getattr(other, name) for name in self.__dataclass_fields__})

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__dataclass_fields__)

    def report(self) -> str:
        lines = []
        for name in self.__dataclass_fields__:
            for item in sorted(getattr(self, name)):
                lines.append(f"{name}: {item}")
        return "\n".join(lines)


# A depot's pools (<depot>/.disk, <depot>/.jobs) are warden's wherever the depot is.
POOL_MOUNTS = ("/.disk", "/.jobs")


def mounts(markers: tuple[str, ...] = ("/warden", "/wt-")) -> frozenset[str]:
    found = set()
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 1 and (any(m in parts[1] for m in markers) or parts[1].endswith(POOL_MOUNTS)):
            found.add(parts[1].replace("\\040", " "))
    return frozenset(found)


def iptables() -> tuple[frozenset[str], frozenset[str]]:
    """Chains named warden-* and every rule that mentions one, in both tables."""
    if shutil.which("iptables-save") is None:
        return frozenset(), frozenset()
    chains, rules = set(), set()
    for table in ("filter", "nat"):
        try:
            out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            if line.startswith(":warden"):
                chains.add(f"{table}:{line.split()[0][1:]}")
            elif line.startswith("-A") and "warden" in line:
                rules.add(f"{table}:{line}")
    return frozenset(chains), frozenset(rules)


def interfaces() -> frozenset[str]:
    try:
        return frozenset(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith("w-"))
    except OSError:
        return frozenset()


def cgroups(root: Path = CGROUP_ROOT) -> frozenset[str]:
    """Every `instance-*` group below a group named `warden`: v1's
    `<root>/<subsystem>/warden/instance-<id>`, v2's `<base>/instance-<id>` wherever
    setup.sh put the base (`<root>/warden`, or `<delegated group>/warden` at any
    depth). A delegated group's `server` leaf holds the server: not a leak. The walk
    does not go into instance groups (what is nested there goes with them)."""
    found: set[str] = set()
    todo = [root]
    while todo:
        directory = todo.pop()
        try:
            entries = [e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue  # removed while we looked: nothing left there
        instances = directory.name == "warden"
        for entry in entries:
            if entry.name.startswith("instance-"):
                if instances:
                    found.add(entry.path)
                continue
            todo.append(Path(entry.path))
    return frozenset(found)


def netns() -> frozenset[str]:
    path = Path("/run/netns")
    try:
        return frozenset(p.name for p in path.iterdir() if re.match(r"^(w-|wt|wtn-)", p.name))
    except OSError:
        return frozenset()


def processes() -> frozenset[str]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        # A zombie has exited; only its parent's bookkeeping is left.
        if state != "Z" and (comm in PROCESS_NAMES or comm.startswith("wshd")):
            found.add(f"{entry.name} {comm}")
    return frozenset(found)


def snapshot() -> Objects:
    chains, rules = iptables()
    return Objects(
        mounts=mounts(),
        chains=chains,
        rules=rules,
        interfaces=interfaces(),
        cgroups=cgroups(),
        netns=netns(),
        processes=processes(),
    )


def main() -> int:
    objects = snapshot()
    if objects:
        print(objects.report())
        return 1
    print("no warden objects in the kernel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
