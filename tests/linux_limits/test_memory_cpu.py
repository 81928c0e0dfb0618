"""limit_memory.sh, limit_cpu.sh and the oom notifier on a real container.

The container runs in a depot without a disk pool (its writable layer is the
plain tmp/ dir). Memory pressure comes from inside the container: a tmpfs
file in /dev/shm (charged to the container and, with no swap, impossible to
reclaim) and a perl process that builds a 64 MiB string.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import cgroups
from tests.linux_kernel.kernel import ROOT_LINUX
from tests.support import needs_kernel

from .limits import OOM, Depot, cgroup, limit, limits_skip_reason, run, wait_until

pytestmark = needs_kernel(limits_skip_reason())

MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def container(request):
    depot = Depot()

    def teardown():
        problems, still = depot.cleanup()
        assert not problems and not still, (problems, still)

    request.addfinalizer(teardown)
    return depot.container(slot=0)


# What the kernel holds for 512 shares: cpu.shares on v1, cpu.weight on v2.
CPU_512 = f"{cgroups.cpu_weight_of(512)}\n" if cgroups.v2() else "512\n"


def memory_files(c):
    return cgroups.memory_limits(c.depot, c.id)


def set_memory(c, value):
    res = limit(c, "limit_memory.sh", LIMIT_IN_BYTES=value)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def test_memory_query_without_limit(container):
    res = limit(container, "limit_memory.sh")
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) == memory_files(container)[0]


def test_memory_set_lower_raise(container):
    has_memsw = cgroups.has_memsw(container.depot, container.id)
    # The kernel rounds down to whole pages; memsw follows the limit.
    assert set_memory(container, 64 * MIB + 1000) == 64 * MIB
    assert set_memory(container, 10 * MIB + PAGE - 1) == 10 * MIB
    if has_memsw:
        assert memory_files(container) == (10 * MIB, 10 * MIB)
    assert set_memory(container, 128 * MIB) == 128 * MIB        # raise: memsw first
    if has_memsw:
        assert memory_files(container) == (128 * MIB, 128 * MIB)
    assert set_memory(container, 32 * MIB) == 32 * MIB          # lower: limit first
    if has_memsw:
        assert memory_files(container) == (32 * MIB, 32 * MIB)
    res = limit(container, "limit_memory.sh")
    assert int(res.stdout) == 32 * MIB
    # Empty means "not given" (the server stringifies a missing value).
    res = limit(container, "limit_memory.sh", LIMIT_IN_BYTES="")
    assert (res.returncode, int(res.stdout)) == (0, 32 * MIB)


def test_memory_limit_below_usage_is_refused(container):
    set_memory(container, 256 * MIB)
    container.sh("head -c 48M /dev/zero >/dev/shm/fill")
    try:
        before = memory_files(container)
        res = limit(container, "limit_memory.sh", LIMIT_IN_BYTES=16 * MIB)
        assert res.returncode == 1
        assert res.stderr.strip() == "Failed setting memory limit: Device or resource busy"
        assert res.stdout == ""
        assert memory_files(container) == before
    finally:
        container.sh("rm -f /dev/shm/fill")


def test_memory_bad_values(container):
    for value in ("abc", "-1", "1e9", "12 34"):
        res = limit(container, "limit_memory.sh", LIMIT_IN_BYTES=value)
        assert res.returncode == 1, value
        assert res.stderr.startswith("Failed setting memory limit: LIMIT_IN_BYTES must be a number"), res.stderr


def test_memory_huge_value_means_unlimited(container):
    unlimited = set_memory(container, 2**64 - 1)
    assert unlimited >= 2**62
    set_memory(container, 128 * MIB)


def test_memory_raise_puts_memsw_back_when_the_limit_write_fails(tmp_path):
    """Raising writes memsw first; if the limit write then fails, memsw gets
    its old value back. The kernel never refuses that second write, so this
    runs the script against a fake cgroup tree (WARDEN_CGROUP_ROOT) of plain
    files, with an immutable memory.limit_in_bytes (which stops root too)."""
    cid = "tstfakememw"
    group = tmp_path / "cgroup" / "memory" / "warden" / f"instance-{cid}"
    group.mkdir(parents=True)
    limit_file = group / "memory.limit_in_bytes"
    memsw_file = group / "memory.memsw.limit_in_bytes"
    limit_file.write_text(f"{16 * MIB}\n")
    memsw_file.write_text(f"{32 * MIB}\n")
    # A container dir without etc/config: the id comes from the environment.
    cdir = tmp_path / "container"
    cdir.mkdir()
    for name in ("limit_memory.sh", "lib"):
        os.symlink(ROOT_LINUX / "skeleton" / name, cdir / name)
    if subprocess.run(["chattr", "+i", str(limit_file)], capture_output=True).returncode != 0:
        pytest.skip(f"chattr +i does not work on {tmp_path}")
    try:
        res = run(cdir / "limit_memory.sh", check=False,
                  env={"id": cid, "WARDEN_CGROUP_ROOT": str(tmp_path / "cgroup"), "LIMIT_IN_BYTES": str(64 * MIB)})
    finally:
        subprocess.run(["chattr", "-i", str(limit_file)], check=True)
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr.strip() == "Failed setting memory limit: Operation not permitted"
    assert memsw_file.read_text() == f"{32 * MIB}\n"
    assert limit_file.read_text() == f"{16 * MIB}\n"


def _wait_blocked(pid):
    """True once pid sleeps with an eventfd open (oom is registered)."""
    def blocked():
        try:
            fds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        # v1: an eventfd on memory.oom_control; v2: an inotify on memory.events
        return state == "S" and any("eventfd" in fd or "inotify" in fd for fd in fds)
    return wait_until(blocked, timeout=5, interval=0.01)


def test_oom_kills_the_job_and_notifies(container):
    set_memory(container, 32 * MIB)
    oom = subprocess.Popen([str(OOM), str(cgroup(container, "memory"))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_blocked(oom.pid), "oom did not start waiting"
        killed_before = _oom_kills(container)
        res = container.wsh("perl", "-e", '$x = "a" x (64 << 20); print "survived\\n"', user="vcap")
        assert res.returncode == 255, (res.returncode, res.stdout, res.stderr)   # SIGKILL
        assert b"survived" not in res.stdout
        out, err = oom.communicate(timeout=10)
        assert (oom.returncode, out, err) == (0, b"", b"")
        assert _oom_kills(container) > killed_before
    finally:
        if oom.poll() is None:
            oom.send_signal(signal.SIGKILL)
            oom.wait()
    # Only the job died: the container still runs jobs.
    assert container.sh("echo alive") == "alive\n"
    set_memory(container, 256 * MIB)


def _oom_kills(c):
    return cgroups.ooms(c.depot, c.id)


def test_memory_limit_does_not_wait(container):
    # Not a speed test (that is `invoke bench`): setting a limit must not sit
    # in a retry or sleep loop, which would take seconds.
    start = time.monotonic()
    for value in (64 * MIB, 48 * MIB):
        set_memory(container, value)
    elapsed = (time.monotonic() - start) / 2
    assert elapsed < 5, f"limit_memory.sh took {elapsed * 1000:.1f} ms"


def test_cpu_shares(container):
    res = limit(container, "limit_cpu.sh", LIMIT_IN_SHARES=1)
    assert (res.returncode, res.stdout) == (0, "2\n")       # the kernel's minimum
    res = limit(container, "limit_cpu.sh", LIMIT_IN_SHARES=512)
    assert (res.returncode, res.stdout) == (0, "512\n")
    assert cgroups.cpu_setting(container.depot, container.id) == CPU_512
    res = limit(container, "limit_cpu.sh")
    assert (res.returncode, res.stdout) == (0, "512\n")
    res = limit(container, "limit_cpu.sh", LIMIT_IN_SHARES="lots")
    assert res.returncode == 1
    assert res.stderr.startswith("Failed setting cpu shares: LIMIT_IN_SHARES must be a number")
    res = limit(container, "limit_cpu.sh", LIMIT_IN_SHARES=10**20)
    assert res.returncode == 1
    assert res.stderr.startswith("Failed setting cpu shares: ")
    assert cgroups.cpu_setting(container.depot, container.id) == CPU_512


def test_limits_of_a_stopped_or_missing_container():
    depot = Depot()
    try:
        c = depot.container(slot=1, start=False)     # created, never started: no cgroups
        res = limit(c, "limit_memory.sh", LIMIT_IN_BYTES=MIB)
        assert res.returncode == 1 and "is the container running?" in res.stderr
        assert res.stderr.startswith("Failed setting memory limit: ")
        res = limit(c, "limit_cpu.sh")
        assert res.returncode == 1 and "is the container running?" in res.stderr
    finally:
        problems, still = depot.cleanup(clear=False)   # the module's container is alive
    assert not problems and not still, (problems, still)
