"""Fixtures shared by the resource-limit tests."""
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def ip_forward():
    """root/linux/setup.sh turns IPv4 forwarding on; put it back as it was."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    before = path.read_text()
    yield
    path.write_text(before)
