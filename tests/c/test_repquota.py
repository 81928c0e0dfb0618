"""The repquota helper (`make -C src/repquota test`), plus its contract on a
host without kernel quota support: a clear message and exit 1, never output."""

import os
import subprocess
from pathlib import Path

import pytest

REPQUOTA_DIR = Path(__file__).resolve().parents[2] / "src" / "repquota"
REPQUOTA = REPQUOTA_DIR / "repquota"


def test_repquota_make_test():
    result = subprocess.run(["make", "-C", str(REPQUOTA_DIR), "test"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "repquota: all tests passed" in result.stdout


@pytest.mark.parametrize("args", [[], ["/"], ["/", "nobody"]])
def test_usage_errors_exit_2(args):
    result = subprocess.run([REPQUOTA, *args], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert result.stdout == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another uid's quota needs root")
def test_root_filesystem():
    result = subprocess.run([REPQUOTA, "/", "0", "65534"], capture_output=True, text=True)
    if result.returncode == 0:     # a host with quotas on /
        lines = result.stdout.splitlines()
        assert [line.split()[0] for line in lines] == ["0", "65534"]
        assert all(len(line.split()) == 9 for line in lines)
    else:
        assert result.returncode == 1
        assert result.stdout == ""
        assert "no quota support" in result.stderr or "no quota for this user" in result.stderr
