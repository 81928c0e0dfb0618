"""The cgroup v2 devices whitelist, devices-bpf (`make -C src/devices test`).

The C-side script makes cgroups named warden-test-devices-* on the cgroup2
mount (on our hybrid hosts /sys/fs/cgroup/unified), attaches the program,
checks from processes inside them what may be opened and made and what may
not, and removes its cgroups, nodes and processes whatever happens.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEVICES_DIR = REPO / "src" / "devices"
HOOK = REPO / "root" / "linux" / "skeleton" / "lib" / "hook-parent-after-clone.sh"


def _cgroup2_root():
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return Path(fields[1])
    return None


def _skip_reason():
    if os.geteuid() != 0:
        return "loads BPF programs and makes cgroups: run as root"
    if _cgroup2_root() is None:
        return "no cgroup2 mount in /proc/mounts"
    return None


def _make(target):
    return subprocess.run(["make", "-C", str(DEVICES_DIR), target], capture_output=True, text=True, timeout=180)


def test_default_rules_are_the_v1_whitelist():
    """The built-in rules are the devices.allow list of the v1 hook, in order."""
    built = _make("all")
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    printed = subprocess.run([str(DEVICES_DIR / "devices-bpf"), "rules"], capture_output=True, text=True, check=True)
    call = re.search(r'cgroup_create_instance "\$PID" (.*?)\n\n', HOOK.read_text(), re.S)
    assert call, f"no 'cgroup_create_instance \"$PID\" RULE...' in {HOOK}"
    v1 = re.findall(r"'([^']*)'", call.group(1))
    assert printed.stdout.splitlines() == v1


@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
def test_devices_make_test():
    result = _make("test")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "devices-bpf: all tests passed" in result.stdout
    assert not list(_cgroup2_root().glob("warden-test-devices-*"))
