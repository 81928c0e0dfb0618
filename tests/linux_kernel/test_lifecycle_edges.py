"""Failure paths of the Linux container scripts, in the real kernel.

A start that fails must say why and leave a container that destroy.sh
removes completely; destroy.sh must cope with half-made containers; clear.sh
empties a depot and sweeps up what dead containers left in the kernel.
Each test checks that nothing of its containers is left behind.
"""
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import cgroups
from tests.support import needs_kernel

from .kernel import ROOT_LINUX, Container, leftovers, new_id, skip_reason

pytestmark = needs_kernel(skip_reason())


@pytest.fixture
def depot():
    path = Path(tempfile.mkdtemp(prefix="warden-test-depot-"))
    made = []
    yield path, made
    try:
        for c in made:
            c.destroy(check=False)
        left = [x for c in made for x in leftovers(path, c.id)]
    finally:
        shutil.rmtree(path, ignore_errors=True)
    assert not left, f"left behind: {left}"


def test_failing_parent_hook_is_reported(depot):
    path, made = depot
    c = Container(path, container_iface_mtu="99999")   # ip refuses this mtu
    made.append(c)
    c.script(ROOT_LINUX / "create.sh", c.path)
    res = c.script(c.path / "start.sh", check=False)
    assert res.returncode == 1
    assert "hook-parent-after-clone.sh failed with exit status" in res.stderr
    # The cgroups were made before the failure; destroy finds them by id.
    assert cgroups.instance_groups(c.id)
    assert not (c.path / "run" / "wshd.pid").exists()
    c.destroy()
    assert not c.path.exists()
    assert leftovers(path, c.id) == []


def test_failing_container_hook_is_reported(depot):
    path, made = depot
    c = Container(path, network_container_ip="10.254.255.300")
    made.append(c)
    c.script(ROOT_LINUX / "create.sh", c.path)
    res = c.script(c.path / "start.sh", check=False)
    assert res.returncode == 1
    assert "hook-child-after-pivot.sh failed with exit status" in res.stderr
    assert "container init failed" in res.stderr
    c.destroy()
    assert leftovers(path, c.id) == []


def test_start_twice_and_destroy_twice(depot):
    path, made = depot
    c = Container(path)
    made.append(c)
    c.create_and_start()
    res = c.script(c.path / "start.sh", check=False)
    assert res.returncode == 1 and "already running" in res.stderr
    assert c.wsh("true").returncode == 0
    res = c.script(ROOT_LINUX / "create.sh", c.path, check=False)
    assert res.returncode == 1 and "already exists" in res.stderr
    c.destroy()
    c.destroy()
    assert not c.path.exists()


def test_destroy_half_made_containers(depot):
    path, made = depot
    created = Container(path)          # created, never started
    made.append(created)
    created.script(ROOT_LINUX / "create.sh", created.path)
    broken = Container(path, rootfs_path="/nonexistent")   # setup.sh fails
    made.append(broken)
    res = broken.script(ROOT_LINUX / "create.sh", broken.path, check=False)
    assert res.returncode != 0 and "rootfs_path" in res.stderr
    assert broken.path.exists()
    for c in (created, broken):
        c.destroy()
        assert not c.path.exists()
    # A dir that was never there, and the depot's tmp dir, are fine.
    subprocess.run([ROOT_LINUX / "destroy.sh", path / "never"], check=True)
    (path / "tmp").mkdir()
    subprocess.run([ROOT_LINUX / "destroy.sh", path / "tmp"], check=True)
    assert (path / "tmp").is_dir()


def test_clear_empties_the_depot_and_sweeps_leftovers(depot):
    others = cgroups.instance_groups() + list(Path("/sys/class/net").glob("w-*"))
    if others:
        pytest.skip(f"other warden objects exist on this host ({others[0]}); clear.sh would remove them")
    path, made = depot
    running, stopped = Container(path, slot=0), Container(path, slot=1)
    made += [running, stopped]
    running.create_and_start()
    stopped.script(ROOT_LINUX / "create.sh", stopped.path)
    # What a container whose dir is gone may leave: a cgroup and an ifb.
    gone = new_id()
    ghost_cgroup = cgroups.group(path, gone, "cpu")
    try:
        ghost_cgroup.mkdir(parents=True)
        subprocess.run(["ip", "link", "add", f"w-{gone}-2", "type", "ifb"], check=True)
        res = subprocess.run([ROOT_LINUX / "clear.sh", path], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert f"Destroying {running.path}" in res.stdout
        assert f"Removing leftovers of {gone}" in res.stdout
        assert list(path.iterdir()) == []
        assert not ghost_cgroup.exists()
        assert not Path(f"/sys/class/net/w-{gone}-2").exists()
    finally:
        subprocess.run(["ip", "link", "del", f"w-{gone}-2"], capture_output=True)
        if ghost_cgroup.exists():
            ghost_cgroup.rmdir()
    for c in made:
        assert leftovers(path, c.id) == []
