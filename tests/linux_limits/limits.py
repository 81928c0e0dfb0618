"""Helpers for the resource-limit tests: real containers (from
tests/linux_kernel/kernel.py), depots with a btrfs disk pool, and checks that
nothing is left in the kernel.

The root scripts setup.sh and clear.sh run from a scratch copy of
root/linux made of symlinks, with a fake net.sh that only records its
calls: the global iptables rules belong to net.sh's own tests, and these
tests must neither need them nor tear them down under other tests. For the
same reason each container's net.sh is removed before it starts (start.sh
and destroy.sh run it only when it is there).
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests import cgroups
from tests.linux_kernel.kernel import ROOT_LINUX, Container, leftovers, skip_reason
from tests.support import poll as wait_until

REPO = ROOT_LINUX.parents[1]
OOM = REPO / "src" / "oom" / "oom"
POOL = ".disk"
IMAGE = ".disk.img"
FAKE_NET = """#!/usr/bin/env bash
echo "$1" >>"${0%/*}/net.calls"
"""


def limits_skip_reason():
    reason = skip_reason()
    if reason:
        return reason
    if not OOM.exists():
        return f"{OOM} not built: make -C src/oom"
    return None


def btrfs_skip_reason():
    if shutil.which("mkfs.btrfs") is None or shutil.which("btrfs") is None:
        return "btrfs-progs not installed (apt-get install btrfs-progs)"
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "btrfs"], capture_output=True)
    if "btrfs" not in Path("/proc/filesystems").read_text().split():
        return "the kernel has no btrfs"
    return None


def run(*cmd, env=None, check=True, timeout=120):
    full_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    full_env.update(env or {})
    res = subprocess.run([str(c) for c in cmd], env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def key_values(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def mounts_under(path):
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            mountpoint = line.split()[1]
            if mountpoint == str(path) or mountpoint.startswith(f"{path}/"):
                found.append(mountpoint)
    return found


def loops_on(image):
    """Loop devices backed by image, also once the image is deleted."""
    res = subprocess.run(["losetup", "--list", "--noheadings", "--raw", "--output", "NAME,BACK-FILE"],
                         capture_output=True, text=True)
    found = []
    for line in res.stdout.splitlines():
        name, _, back = line.partition(" ")
        if back == str(image) or back.startswith(f"{image} "):
            found.append(name)
    return found


def mount_holders(path):
    """Processes whose mount namespace has a mount at path (they keep a
    loop-mounted filesystem alive after the host unmounts it)."""
    holders = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if f" {path} " in (proc / "mountinfo").read_text():
                    holders.append(f"{proc.name} {(proc / 'cmdline').read_bytes()[:80]!r}")
            except OSError:
                pass
    return holders


# Another test suite's process that made a mount namespace while a pool was
# mounted keeps the pool's loop device until it exits (see clear.sh).
LOOP_RELEASE_TIMEOUT = 30


class Depot:
    """A scratch depot in /tmp (its name marks it as warden's for the leak
    check) and a scratch root dir to run setup.sh and clear.sh from."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="warden-test-depot-"))
        self.root = Path(tempfile.mkdtemp(prefix="warden-test-root-"))
        for name in ("setup.sh", "clear.sh", "destroy.sh", "skeleton"):
            os.symlink(ROOT_LINUX / name, self.root / name)
        net = self.root / "net.sh"
        net.write_text(FAKE_NET)
        net.chmod(0o755)
        self.containers = []

    @property
    def pool(self):
        return self.path / POOL

    @property
    def image(self):
        return self.path / IMAGE

    def net_calls(self):
        calls = self.root / "net.calls"
        return calls.read_text().split() if calls.exists() else []

    def setup(self, quota="false", env=None, check=True):
        full_env = {"CONTAINER_DEPOT_PATH": str(self.path), "DISK_QUOTA_ENABLED": quota,
                    "POOL_NETWORK": "10.254.255.0/28", "ALLOW_NETWORKS": "", "ALLOW_HOST_ACCESS": "false"}
        full_env.update(env or {})
        return run(self.root / "setup.sh", env=full_env, check=check)

    def clear(self, check=True):
        # POOL_NETWORK: clear.sh tears down the global rules of that pool only
        # (the fake net.sh records the call).
        return run(self.root / "clear.sh", self.path, check=check, env={"POOL_NETWORK": "10.254.254.0/28"})

    def container(self, slot=0, start=True):
        c = Container(self.path, slot=slot)
        self.containers.append(c)
        c.script(ROOT_LINUX / "create.sh", c.path)
        (c.path / "net.sh").unlink(missing_ok=True)
        if start:
            c.script(c.path / "start.sh")
        return c

    def destroy(self, c):
        res = c.destroy(check=False)
        if c in self.containers:
            self.containers.remove(c)
        assert res.returncode == 0, f"destroy.sh failed: {res.stderr}"
        assert self.leftovers(c) == []

    def leftovers(self, c):
        """What of container c is in the kernel (the depot's pools are not c's)."""
        shared = {f"mount {self.pool}", f"mount {self.path / '.jobs'}"}
        return [x for x in leftovers(self.path, c.id) if x not in shared]

    def cleanup(self, clear=True):
        """Everything gone, whatever state the tests left: returns what had
        to be removed by force (should be nothing) and what is still there.

        clear.sh also sweeps up the kernel objects of every warden container
        on the host whose dir is not in this depot, so it only runs where a
        pool needs taking down (clear=True) and no other container of these
        tests is alive."""
        problems = []
        for c in list(self.containers):
            res = c.destroy(check=False)
            if res.returncode != 0:
                problems.append(f"destroy {c.id}: {res.stderr.strip()}")
        if clear:
            res = self.clear(check=False)
            if res.returncode != 0:
                problems.append(f"clear.sh: {res.stderr.strip()}")
        # Force, so that a failed test does not leave the machine dirty.
        for mountpoint in reversed(mounts_under(self.path)):
            problems.append(f"mount {mountpoint} left")
            subprocess.run(["umount", "-l", mountpoint], capture_output=True)
        if not wait_until(lambda: not loops_on(self.image), timeout=LOOP_RELEASE_TIMEOUT):
            loops = loops_on(self.image)
            problems.append(f"loop devices {loops} left, held by {mount_holders(self.pool)}")
            subprocess.run(["losetup", "-d", *loops], capture_output=True)
        still = mounts_under(self.path) + loops_on(self.image)
        for c in self.containers:
            still += self.leftovers(c)
        shutil.rmtree(self.path, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        return problems, still


def limit(c, name, **env):
    """Runs the container's limit script NAME with env; returns the result."""
    return run(c.path / name, env={k: str(v) for k, v in env.items()}, check=False)


def cgroup(c, subsystem):
    """The container's group holding `subsystem`'s files, on the host's layout."""
    return cgroups.group(c.depot, c.id, subsystem)
