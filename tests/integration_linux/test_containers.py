"""Isolation, users, rlimits, copy semantics and bind mounts on the Linux backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import cgroups

from ..integration.wire import ServerError


def run(wire, handle, script, **fields):
    return wire.call("Run", handle=handle, script=script, **fields)


def test_jobs_run_as_vcap_with_the_pool_uid_or_root(wire, container):
    uid = run(wire, container, "id -u")["stdout"].strip()
    assert int(uid) >= 10000
    assert run(wire, container, "id -un")["stdout"] == b"vcap\n"
    assert run(wire, container, "id -u", privileged=True)["stdout"] == b"0\n"
    assert run(wire, container, "echo $HOME")["stdout"] == b"/home/vcap\n"


def test_isolation_of_pids_hostname_and_mounts(wire, container):
    info = wire.call("Info", handle=container)
    assert run(wire, container, "hostname")["stdout"].decode().strip() == Path(info["container_path"]).name
    processes = run(wire, container, "ps -e -o pid=,comm=")["stdout"].decode().split("\n")
    pids = [line.split()[0] for line in processes if line.strip()]
    assert "1" in pids and len(pids) < 10
    # The container's root is its own overlay; the host's files are not there.
    assert run(wire, container, "test -e /work/main/tasks.py; echo $?")["stdout"] == b"1\n"
    host_mounts = Path("/proc/self/mounts").read_text()
    assert info["container_path"] + "/mnt" not in host_mounts


def test_container_address_is_configured(wire, container):
    info = wire.call("Info", handle=container)
    addrs = run(wire, container, "ip -o -4 addr show")["stdout"].decode()
    assert info["container_ip"] in addrs
    route = run(wire, container, "ip route show default")["stdout"].decode()
    assert info["host_ip"] in route


def test_rlimits_merge_and_do_not_leak(wire, container):
    # config/linux.yml-like defaults are not set in the test server: wshd's defaults apply.
    assert run(wire, container, "ulimit -n", rlimits={"nofile": 77})["stdout"] == b"77\n"
    assert run(wire, container, "ulimit -n")["stdout"] == b"1024\n"


def test_exit_status_and_signals(wire, container):
    assert run(wire, container, "exit 42")["exit_status"] == 42
    assert run(wire, container, "kill -9 $$")["exit_status"] == 255


def test_copy_in_and_out_as_vcap_with_permissions_and_symlinks(wire, container, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.sh").write_text("echo hi\n")
    os.chmod(src / "run.sh", 0o751)
    os.symlink("run.sh", src / "link")
    wire.call("CopyIn", handle=container, src_path=f"{src}/", dst_path="/home/vcap/app")
    listing = run(wire, container, "cd ~/app && stat -c '%a %U %F %n' run.sh link")["stdout"].decode().splitlines()
    assert listing == ["751 vcap regular file run.sh", "777 vcap symbolic link link"]
    out = tmp_path / "out"
    owner = "nobody:nogroup"
    wire.call("CopyOut", handle=container, src_path="/home/vcap/app/", dst_path=str(out), owner=owner)
    assert (out / "run.sh").read_text() == "echo hi\n"
    assert os.readlink(out / "link") == "run.sh"
    import pwd

    assert (out / "run.sh").stat().st_uid == pwd.getpwnam("nobody").pw_uid


def test_bind_mounts_ro_and_rw(wire, tmp_path):
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    os.chmod(rw, 0o777)
    (ro / "file").write_text("read me\n")
    handle = wire.call("Create", bind_mounts=[
        {"src_path": str(ro), "dst_path": "/data/ro", "mode": "RO"},
        {"src_path": str(rw), "dst_path": "/data/rw", "mode": "RW"},
    ])["handle"]
    try:
        assert run(wire, handle, "cat /data/ro/file")["stdout"] == b"read me\n"
        assert run(wire, handle, "touch /data/ro/x", privileged=True)["exit_status"] != 0
        assert run(wire, handle, "echo written > /data/rw/out")["exit_status"] == 0
        assert (rw / "out").read_text() == "written\n"
        # Bind mounts live in the container's namespace only.
        assert "/data/ro" not in Path("/proc/self/mounts").read_text()
    finally:
        wire.call("Destroy", handle=handle)


def test_create_errors_leave_nothing(wire, linux_server):
    with pytest.raises(ServerError) as err:
        wire.call("Create", bind_mounts=[{"src_path": "/nonexistent", "dst_path": "/x", "mode": "RO"}])
    assert err.value.message == "Source path for bind mount does not exist: /nonexistent"
    with pytest.raises(ServerError) as err:
        wire.call("Create", rootfs="/nonexistent-rootfs")
    assert err.value.message == "rootfs /nonexistent-rootfs not found"
    assert [p for p in linux_server.depot.iterdir() if not p.name.startswith(".")] == []


def test_stop_keeps_the_filesystem_and_destroy_removes_everything(wire):
    handle = wire.call("Create")["handle"]
    path = wire.call("Info", handle=handle)["container_path"]
    run(wire, handle, "echo kept > ~/kept")
    wire.call("Stop", handle=handle)
    assert wire.call("Info", handle=handle)["state"] == "stopped"
    wire.call("Destroy", handle=handle)
    assert not os.path.exists(path)
    cid = Path(path).name
    assert not list(Path("/sys/class/net").glob(f"w-{cid}-*"))
    assert not cgroups.instance_groups(cid)


def test_shm_is_writable(wire, container):
    assert run(wire, container, "dd if=/dev/zero of=/dev/shm/x bs=1M count=8 2>/dev/null && echo ok")["stdout"] == b"ok\n"


def test_bind_mount_targets_resolve_inside_the_container(wire, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("hi\n")
    marker = "wt-bind-target-check"
    handle = wire.call("Create", bind_mounts=[
        {"src_path": str(src), "dst_path": f"/var/run/{marker}", "mode": "RO"},
    ])["handle"]
    try:
        # /var/run is a symlink to /run in the rootfs: it must resolve in the container.
        assert run(wire, handle, f"cat /run/{marker}/hello")["stdout"] == b"hi\n"
        assert not Path("/run", marker).exists()
    finally:
        wire.call("Destroy", handle=handle)


@pytest.mark.parametrize("dst", ["relative/path", "/a/../../etc", "/"])
def test_bind_mount_targets_must_be_absolute_and_inside(wire, tmp_path, dst):
    with pytest.raises(ServerError) as err:
        wire.call("Create", bind_mounts=[{"src_path": str(tmp_path), "dst_path": dst, "mode": "RO"}])
    assert err.value.message.startswith("invalid request: bind mount dst_path")


def test_log_tag_reaches_syslog_from_a_container(make_linux_server):
    import socket
    import tempfile

    path = tempfile.mktemp(prefix="wt-syslog-", dir="/tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        server = make_linux_server(server={"syslog_socket": path})
        with server.connect() as wire:
            handle = wire.call("Create")["handle"]
            reply = wire.call("Run", handle=handle, log_tag="lx", script="echo out-line; echo err-line >&2; id -un")
            assert reply["stdout"] == b"out-line\nvcap\n" and reply["stderr"] == b"err-line\n"
        got = {sock.recv(4096) for _ in range(3)}
        assert got == {b"<14>warden.lx: out-line", b"<11>warden.lx: err-line", b"<14>warden.lx: vcap"}
    finally:
        sock.close()
        os.unlink(path)
