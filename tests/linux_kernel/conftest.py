"""The containers here are started by hand (no server): set up the global
iptables rules of their pool first, as the server's root setup.sh would, and
remove exactly those afterwards."""

from __future__ import annotations

import os
import subprocess

import pytest

from .kernel import NETWORK, ROOT_LINUX, skip_reason


@pytest.fixture(autouse=True, scope="session")
def global_net_rules():
    if skip_reason() is not None:
        yield
        return
    env = dict(os.environ, POOL_NETWORK=NETWORK)
    subprocess.run([str(ROOT_LINUX / "net.sh"), "setup"], env=env, check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([str(ROOT_LINUX / "net.sh"), "teardown"], env=env, check=True, capture_output=True)
