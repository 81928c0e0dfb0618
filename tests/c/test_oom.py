"""The oom notifier (`make -C src/oom test`).

v1, in real memory cgroups: test.sh makes groups under
/sys/fs/cgroup/memory/warden/test-oom-*, drives a real OOM kill, an
already-under-OOM group, an rmdir and the death of the parent, and removes
its groups and processes whatever happens.

v2: test-v2.sh drives the memory.events + inotify mode on fake groups in a
temporary directory (any host, any user), and a real OOM where a cgroup2
mount has the memory controller (not on our hybrid hosts: the VM suite).
"""

import os
import subprocess
from pathlib import Path

import pytest

OOM_DIR = Path(__file__).resolve().parents[2] / "src" / "oom"
MEMORY = Path("/sys/fs/cgroup/memory")


def _skip_reason():
    if os.geteuid() != 0:
        return "makes memory cgroups: run as root"
    if not (MEMORY / "memory.oom_control").exists():
        return f"no cgroup v1 memory hierarchy at {MEMORY}"
    return None


@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
def test_oom_make_test():
    result = subprocess.run(["make", "-C", str(OOM_DIR), "test"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "oom: all tests passed" in result.stdout
    assert not list(MEMORY.glob("warden/test-oom-*"))


def test_oom_v2_fake_groups():
    built = subprocess.run(["make", "-C", str(OOM_DIR), "oom", "memhog"], capture_output=True, text=True, timeout=180)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    result = subprocess.run([str(OOM_DIR / "test-v2.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "oom v2: all tests passed" in result.stdout
    for root in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        assert not list(root.glob("warden-test-oom-*"))
