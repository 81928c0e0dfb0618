"""Disk limits through the depot's btrfs pool, on real containers.

root/linux/setup.sh makes the pool (a sparse image <depot>/.disk.img,
loop-mounted btrfs at <depot>/.disk, quotas on); each container's writable
layer is a subvolume there and limit_disk.sh sets its qgroup limit. The
writer in the container is the unprivileged vcap user (wsh --user vcap).
clear.sh takes it all away again; every fixture checks that no mount, loop
device or cgroup is left.
"""
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests import cgroups
from tests.support import needs_kernel

from .limits import (
    Depot,
    btrfs_skip_reason,
    key_values,
    limit,
    limits_skip_reason,
    loops_on,
    mounts_under,
    run,
    wait_until,
)

pytestmark = needs_kernel(limits_skip_reason() or btrfs_skip_reason())

MIB = 1 << 20
KEYS = ["block_soft", "block_hard", "inode_soft", "inode_hard", "bytes_used", "inodes_used"]


@pytest.fixture(scope="module")
def depot(request, ip_forward):
    d = Depot()

    def teardown():
        problems, still = d.cleanup()
        assert not problems and not still, (problems, still)

    request.addfinalizer(teardown)
    started = time.monotonic()
    d.setup()
    d.setup_seconds = time.monotonic() - started
    return d


@pytest.fixture(scope="module")
def container(depot):
    return depot.container(slot=0)


def disk(c, **env):
    res = limit(c, "limit_disk.sh", **env)
    assert res.returncode == 0, res.stderr
    assert [line.split("=")[0] for line in res.stdout.splitlines()] == KEYS
    return {k: int(v) for k, v in key_values(res.stdout).items()}


def write_mib(c, name, mib, user="vcap"):
    """dd mib MiB into ~/name as user; returns (exit status, stderr)."""
    res = c.wsh("bash", "-c", f"dd if=/dev/zero of=$HOME/{name} bs=1M count={mib} conv=fsync status=none",
                user=user)
    return res.returncode, res.stderr.decode()


def test_pool_is_made(depot):
    mounts = {line.split()[1]: line.split() for line in Path("/proc/self/mounts").read_text().splitlines()}
    assert str(depot.pool) in mounts
    assert mounts[str(depot.pool)][2] == "btrfs"
    assert len(loops_on(depot.image)) == 1
    st = depot.image.stat()
    fs = os.statvfs(depot.path)
    assert st.st_size == fs.f_blocks * fs.f_frsize          # as large as the depot's filesystem
    assert st.st_blocks * 512 < 64 * MIB                      # and sparse
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(depot.pool.stat().st_mode) == 0o700
    run("btrfs", "qgroup", "show", depot.pool)                # quotas are on
    assert "setup" in depot.net_calls()
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == "1\n"
    for parent in cgroups.parents(depot.path):
        assert parent.is_dir()
    assert depot.setup_seconds < 10


def test_writable_layer_is_a_subvolume(container, depot):
    config = (container.path / "etc" / "config").read_text()
    layer = depot.pool / container.id
    assert f"writable_layer_dir={layer}\n" in config
    assert layer.stat().st_ino == 256                         # a subvolume's root
    assert not (container.path / "tmp" / "rootfs").exists()
    # vcap's files land in the subvolume, owned by vcap.
    container.sh("echo hello >~/hello.txt", user="vcap")
    upper = layer / "rootfs" / "home" / "vcap" / "hello.txt"
    assert upper.read_text() == "hello\n"
    assert (upper.stat().st_uid, upper.stat().st_gid) == (container.user_uid, container.user_uid)
    assert container.sh("stat -c %U ~/hello.txt; mkdir -p /tmp/vcap-dir && touch /tmp/vcap-dir/f && echo ok",
                        user="vcap").split() == ["vcap", "ok"]


def test_query_without_limits(container):
    values = disk(container)
    assert values["block_hard"] == 0 and values["inode_hard"] == 0
    assert values["bytes_used"] > 0 and values["inodes_used"] > 0


def test_hard_limit_is_enforced_for_vcap_and_can_be_raised(container):
    values = disk(container, BLOCK_HARD=20 * 1024)
    assert values["block_hard"] == 20 * 1024
    base = values["bytes_used"]

    assert write_mib(container, "small", 4) == (0, "")
    used = disk(container)["bytes_used"]
    assert used >= base + 4 * MIB

    status, err = write_mib(container, "big", 30)
    assert status != 0
    assert "Disk quota exceeded" in err
    used = disk(container)["bytes_used"]
    assert 15 * MIB < used <= 20 * MIB

    # Raised online: the same job goes on writing.
    assert disk(container, BLOCK_HARD=100 * 1024)["block_hard"] == 100 * 1024
    assert write_mib(container, "big", 30) == (0, "")
    assert disk(container)["bytes_used"] >= 34 * MIB

    # Root's files count too (the limit is the container's, not a uid's).
    container.sh("rm -f ~vcap/big ~vcap/small")
    disk(container, BLOCK_HARD=10 * 1024)
    status, err = write_mib(container, "root-big", 20, user=None)
    assert status != 0 and "Disk quota exceeded" in err
    container.sh("rm -f ~/root-big")

    assert disk(container, BLOCK_HARD=0)["block_hard"] == 0  # unlimited again
    assert write_mib(container, "again", 20) == (0, "")
    container.sh("rm -f ~vcap/again")


def test_soft_and_inode_limits_are_recorded(container):
    values = disk(container, BLOCK_SOFT=1000, INODE_SOFT=300, INODE_HARD=500)
    assert (values["block_soft"], values["inode_soft"], values["inode_hard"]) == (1000, 300, 500)
    # Changing one keeps the others.
    values = disk(container, BLOCK_HARD=50 * 1024)
    assert (values["block_soft"], values["block_hard"], values["inode_soft"], values["inode_hard"]) == \
        (1000, 50 * 1024, 300, 500)
    assert key_values((container.path / "etc" / "disk_limits").read_text()) == {
        "block_soft": "1000", "block_hard": str(50 * 1024), "inode_soft": "300", "inode_hard": "500"}
    values = disk(container, BLOCK_SOFT=0, BLOCK_HARD=0, INODE_SOFT=0, INODE_HARD=0)
    assert [values[k] for k in KEYS[:4]] == [0, 0, 0, 0]


def test_inodes_used_counts_the_upper_layer(container):
    before = disk(container)["inodes_used"]
    container.sh("mkdir ~/many && for i in $(seq 10); do : >~/many/f$i; done", user="vcap")
    assert disk(container)["inodes_used"] == before + 11
    container.sh("rm -rf ~/many", user="vcap")


def test_bad_values_are_refused(container):
    for env in ({"BLOCK_HARD": "lots"}, {"INODE_HARD": "-1"}, {"BLOCK_SOFT": "1" * 16}):
        res = limit(container, "limit_disk.sh", **env)
        assert res.returncode == 1, env
        assert "must be a number" in res.stderr


def test_setup_again_keeps_the_pool(depot, container):
    loops = loops_on(depot.image)
    disk(container, BLOCK_HARD=40 * 1024)
    container.sh("echo kept >~/kept.txt", user="vcap")
    for _ in range(2):
        depot.setup()
    assert loops_on(depot.image) == loops
    assert mounts_under(depot.path).count(str(depot.pool)) == 1
    assert container.sh("cat ~/kept.txt", user="vcap") == "kept\n"
    assert disk(container)["block_hard"] == 40 * 1024
    disk(container, BLOCK_HARD=0)


def test_destroy_removes_the_subvolume_and_its_qgroup(depot):
    c = depot.container(slot=1)
    layer = depot.pool / c.id
    disk(c, BLOCK_HARD=8 * 1024)
    assert write_mib(c, "data", 2) == (0, "")
    subvol_id = run("btrfs", "inspect-internal", "rootid", layer).stdout.strip()
    depot.destroy(c)
    assert not layer.exists()
    assert not c.path.exists()
    # The deleted subvolume's qgroup goes once btrfs has dropped it.
    run("btrfs", "filesystem", "sync", depot.pool)
    run("btrfs", "subvolume", "sync", depot.pool, timeout=60)

    def qgroup_gone():
        out = run("btrfs", "qgroup", "show", "--raw", depot.pool).stdout
        return f"0/{subvol_id} " not in out
    assert wait_until(qgroup_gone, timeout=10)
    # Destroying again is fine.
    assert c.destroy().returncode == 0


def test_subvolume_timings(depot):
    """Creating and deleting a pool subvolume costs a few ms (reported)."""
    lib = Path(__file__).resolve().parents[2] / "root" / "linux" / "skeleton" / "lib"
    script = f"""
set -euo pipefail
source {lib / "common.sh"}
source {lib / "fs.sh"}
id=timing
writable_layer_dir={depot.pool}/timing-layer
set_overlay_dirs
t0=$EPOCHREALTIME; writable_layer_prepare; t1=$EPOCHREALTIME
writable_layer_remove; t2=$EPOCHREALTIME
echo "$t0 $t1 $t2"
"""
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    t0, t1, t2 = map(float, res.stdout.split())
    print(f"subvolume create {1000 * (t1 - t0):.1f} ms, delete {1000 * (t2 - t1):.1f} ms")
    assert not (depot.pool / "timing-layer").exists()


def test_quota_path_uses_setquota_and_repquota(tmp_path):
    """Without a pool, limit_disk.sh speaks per-uid quotas. This kernel has
    none, so setquota and repquota are stand-ins that record and replay."""
    state = tmp_path / "quota"
    state.write_text("0 0 0 0\n")
    calls = tmp_path / "calls"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    setquota = fake_bin / "setquota"
    setquota.write_text(f"""#!/usr/bin/env bash
echo "setquota $*" >>{calls}
echo "$3 $4 $5 $6" >{state}
""")
    repquota = tmp_path / "repquota"
    repquota.write_text(f"""#!/usr/bin/env bash
echo "repquota $*" >>{calls}
read -r bs bh is ih <{state}
echo "$2 123456 $bs $bh 0 42 $is $ih 0"
""")
    for script in (setquota, repquota):
        script.chmod(0o755)
    d = Depot()
    try:
        c = d.container(start=False)
        env = {"REPQUOTA": repquota, "CONTAINER_DEPOT_MOUNT_POINT_PATH": "/srv/depot",
               "PATH": f"{fake_bin}:{os.environ['PATH']}"}
        res = limit(c, "limit_disk.sh", **env)
        assert res.returncode == 0, res.stderr
        assert key_values(res.stdout) == {"block_soft": "0", "block_hard": "0", "inode_soft": "0",
                                          "inode_hard": "0", "bytes_used": "123456", "inodes_used": "42"}
        res = limit(c, "limit_disk.sh", BLOCK_HARD=2048, INODE_SOFT=7, **env)
        assert res.returncode == 0, res.stderr
        assert key_values(res.stdout)["block_hard"] == "2048"
        assert key_values(res.stdout)["inode_soft"] == "7"
        uid = c.user_uid
        assert calls.read_text().splitlines() == [
            f"repquota /srv/depot {uid}",
            f"repquota /srv/depot {uid}",
            f"setquota -u {uid} 0 2048 7 0 /srv/depot",
            f"repquota /srv/depot {uid}",
        ]
    finally:
        problems, still = d.cleanup(clear=False)       # no pool; the module's container is alive
    assert not problems and not still, (problems, still)
