"""Suite-wide guard: the tests must leave the kernel as they found it.

A snapshot of warden's kernel objects (mounts, chains, rules, interfaces,
cgroups, namespaces, processes) is taken before the first test and compared
after the last; anything new fails the run, with the list.
"""

from __future__ import annotations

import time

import pytest

from warden import leaks

_baseline: leaks.Objects | None = None
_IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_ip_forward: str | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _baseline, _ip_forward
    _baseline = leaks.snapshot()
    try:
        with open(_IP_FORWARD) as f:
            _ip_forward = f.read()
    except OSError:
        _ip_forward = None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _baseline is None or getattr(session.config, "workerinput", None) is not None:
        return
    if _ip_forward is not None:
        # The Linux server's setup turns forwarding on; leave it as we found it.
        try:
            with open(_IP_FORWARD, "w") as f:
                f.write(_ip_forward)
        except OSError:
            pass
    deadline = time.monotonic() + 15
    while True:
        left = leaks.snapshot() - _baseline
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # processes and interfaces can take a moment to go
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "warden objects left in the kernel by the tests:\n" + left.report()
        if reporter is not None:
            reporter.write_sep("=", "LEAKS", red=True)
            reporter.write_line(message)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
