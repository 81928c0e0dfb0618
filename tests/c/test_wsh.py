"""The wshd/wsh unit checks and the serve-loop checks (`make -C src/wsh test`)."""

import os
import subprocess
from pathlib import Path

import pytest

WSH_DIR = Path(__file__).resolve().parents[2] / "src" / "wsh"


@pytest.mark.skipif(os.geteuid() != 0, reason="wshd's serve-loop checks switch users: run as root")
def test_wsh_make_test():
    result = subprocess.run(["make", "-C", str(WSH_DIR), "test"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
