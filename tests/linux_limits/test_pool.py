"""The disk pool's life, each test in a depot of its own: setup.sh makes it
and mounts it again, clear.sh takes it all away (mount, loop device, image)
and removes writable layers whose container is gone; without btrfs there is
no pool, and quota mode fails clearly on a kernel without quotas.

clear.sh also sweeps the kernel objects of containers whose dir is not in
its depot, so these tests live in a module of their own: no container of
another module is alive while they run.
"""
import os
import subprocess

from tests.support import needs_kernel

from .limits import (
    LOOP_RELEASE_TIMEOUT,
    Depot,
    btrfs_skip_reason,
    limit,
    limits_skip_reason,
    loops_on,
    mount_holders,
    mounts_under,
    run,
    wait_until,
)

pytestmark = needs_kernel(limits_skip_reason() or btrfs_skip_reason())


def test_clear_on_an_empty_depot_removes_the_pool(ip_forward):
    d = Depot()
    try:
        d.setup()
        image = d.image
        assert loops_on(image)
        # Not mounted (say, after a reboot): setup.sh mounts the image again.
        run("umount", d.pool)
        assert wait_until(lambda: not loops_on(image), timeout=LOOP_RELEASE_TIMEOUT), mount_holders(d.pool)
        d.setup()
        assert str(d.pool) in mounts_under(d.path) and loops_on(image)

        res = d.clear()
        assert "teardown" in d.net_calls()
        assert mounts_under(d.path) == []
        assert not image.exists() and not d.pool.exists()
        assert res.returncode == 0

        def released():
            return str(image) not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        assert wait_until(released, timeout=LOOP_RELEASE_TIMEOUT), mount_holders(d.pool)
    finally:
        problems, still = d.cleanup()
    assert not problems and not still, (problems, still)


def test_clear_removes_orphaned_subvolumes(ip_forward):
    d = Depot()
    try:
        d.setup()
        c = d.container(start=False)            # create.sh makes the subvolume
        assert (d.pool / c.id).is_dir()
        d.containers.remove(c)
        subprocess.run(["rm", "-rf", str(c.path)], check=True)   # the container dir is lost
        res = d.clear()
        assert f"Removing orphaned writable layer {d.pool / c.id}" in res.stdout
        assert mounts_under(d.path) == [] and not d.image.exists()
    finally:
        problems, still = d.cleanup()
    assert not problems and not still, (problems, still)


def test_without_btrfs_there_is_no_pool(ip_forward, tmp_path):
    """No btrfs-progs: a warning, no pool, containers keep tmp/ and get no
    disk limits (limit_disk.sh fails: there is no quota helper either)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if not os.path.isdir(directory) or os.path.islink(directory):
            continue
        for name in os.listdir(directory):
            if "btrfs" not in name and not (bin_dir / name).exists():
                os.symlink(os.path.join(directory, name), bin_dir / name)
    d = Depot()
    try:
        res = d.setup(env={"PATH": str(bin_dir)})
        assert "warning" in res.stderr and "btrfs" in res.stderr
        assert "no disk limits" in res.stderr
        # Only the job directories' tmpfs, which needs no btrfs.
        assert not d.image.exists() and mounts_under(d.path) == [str(d.path / ".jobs")]
        c = d.container(start=False)
        assert "writable_layer_dir=tmp\n" in (c.path / "etc" / "config").read_text()
        assert (c.path / "tmp" / "rootfs").is_dir()
        res = limit(c, "limit_disk.sh")
        assert res.returncode == 1 and "repquota" in res.stderr
    finally:
        problems, still = d.cleanup()
    assert not problems and not still, (problems, still)


def test_quota_mode_fails_clearly_without_kernel_quotas(ip_forward, tmp_path):
    """DISK_QUOTA_ENABLED=true on a host without quota support: setup.sh
    stops with a message about quotas. The depot sits on its own small ext4
    image here, so that the host's filesystems are never remounted."""
    image = tmp_path / "ext4.img"
    mnt = tmp_path / "wt-quota-mnt"
    subprocess.run(["truncate", "-s", "64M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        d = Depot()
        d.path.rmdir()
        d.path = mnt / "depot"
        d.path.mkdir()
        res = d.setup(quota="true", check=False)
        if res.returncode == 0:
            # This kernel has quotas (Debian 12's has): quota mode works, and
            # the depot clears as cleanly as without it.
            assert not (d.path / ".disk").exists()
        else:
            assert res.returncode == 1
            assert "quota" in res.stderr.lower()
            assert not (d.path / ".disk").exists()
        problems, still = d.cleanup()
        assert not problems and not still, (problems, still)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        assert wait_until(lambda: not loops_on(image), timeout=LOOP_RELEASE_TIMEOUT), mount_holders(mnt)
