"""The oom notifier in real memory cgroups (`make -C src/oom test`).

The C-side script makes groups under /sys/fs/cgroup/memory/warden/test-oom-*,
drives a real OOM kill, an already-under-OOM group, an rmdir and the death
of the parent, and removes its groups and processes whatever happens.
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
